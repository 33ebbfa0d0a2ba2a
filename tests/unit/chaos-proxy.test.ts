/**
 * The chaos proxy against tiny TCP servers: it forwards both ways (a megabyte too, through its
 * back-pressure), and a cut throws away the bytes it held, counts them, and closes both sides
 * abruptly; cuts pick connections; the monkey cuts on its own; an orderly end stays orderly.
 */
import assert from "node:assert/strict";
import net from "node:net";
import type { Socket } from "node:net";
import { test } from "node:test";
import { ChaosProxy } from "../support/chaos-proxy.ts";

interface Server {
  port: number;
  /** Server-side sockets, in accept order, with whether each has closed. */
  sockets: Array<{ socket: Socket; closed: boolean }>;
  close(): Promise<void>;
}

async function serve(onConnection: (socket: Socket) => void): Promise<Server> {
  const sockets: Server["sockets"] = [];
  const server = net.createServer((socket) => {
    const entry = { socket, closed: false };
    sockets.push(entry);
    socket.on("error", () => {});
    socket.on("close", () => entry.closed = true);
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return {
    port: (server.address() as net.AddressInfo).port,
    sockets,
    close: () => {
      for (const { socket } of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** A client through the proxy that collects what it receives. */
async function dial(port: number) {
  const socket = net.connect(port, "127.0.0.1");
  const state = { socket, received: Buffer.alloc(0), closed: false, error: undefined as string | undefined };
  socket.on("data", (chunk: Buffer) => state.received = Buffer.concat([state.received, chunk]));
  socket.on("error", (e: NodeJS.ErrnoException) => state.error = e.code ?? e.message);
  socket.on("close", () => state.closed = true);
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve());
    socket.once("error", reject);
  });
  return state;
}

async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test("chaos proxy: forwards both ways, a megabyte intact, and an orderly end stays orderly", async () => {
  const echo = await serve((s) => s.pipe(s));
  const proxy = await ChaosProxy.start(echo.port);
  try {
    const client = await dial(proxy.port);
    client.socket.write("hello");
    await until(() => client.received.toString() === "hello", "the echo");
    const big = Buffer.alloc(1 << 20);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
    client.socket.write(big);
    await until(() => client.received.length === 5 + big.length, "the megabyte back");
    assert.ok(client.received.subarray(5).equals(big), "the bytes, in order");
    assert.equal(proxy.connections.length, 1);
    assert.equal(proxy.connections[0].bytesUp, 5 + big.length);
    assert.equal(proxy.connections[0].bytesDown, 5 + big.length);

    client.socket.end();
    await until(() => client.closed && echo.sockets[0].closed, "both sides closed");
    assert.equal(client.error, undefined, "no reset on an orderly end");
    assert.equal(proxy.cuts, 0);
    assert.equal(proxy.droppedBytes, 0);
    await until(() => proxy.connections.length === 0, "the link gone");
  } finally {
    await proxy.stop();
    await echo.close();
  }
});

test("chaos proxy: a cut throws away the bytes held for the client, counts them, and resets both sides", async () => {
  // The server sends 10,000 bytes at once and then stays; the proxy holds them for 5 s.
  const sent = 10_000;
  const stream = await serve((s) => s.write(Buffer.alloc(sent, 7)));
  const proxy = await ChaosProxy.start(stream.port, { holdMs: 5000 });
  try {
    const client = await dial(proxy.port);
    await until(() => proxy.connections[0]?.heldBytes === sent, "the bytes held by the proxy");
    assert.equal(proxy.cutAll(), 1);
    await until(() => client.closed && stream.sockets[0].closed, "both sides closed");
    assert.equal(client.received.length, 0, "nothing held reached the client");
    assert.equal(proxy.droppedBytes, sent);
    assert.equal(proxy.cuts, 1);
    assert.equal(client.error, "ECONNRESET", "the client sees a reset, not an orderly end");
    assert.deepEqual(proxy.connections, []);
  } finally {
    await proxy.stop();
    await stream.close();
  }
});

test("chaos proxy: a steady stream, cut in the middle: what was held is dropped, the client never gets it", async () => {
  // 100 bytes every 2 ms, batched by 20 ms: a cut almost always finds bytes held.
  const stream = await serve((s) => {
    const timer = setInterval(() => s.writable && s.write(Buffer.alloc(100, 1)), 2);
    s.on("close", () => clearInterval(timer));
  });
  const proxy = await ChaosProxy.start(stream.port, { holdMs: 20 });
  try {
    const client = await dial(proxy.port);
    await until(() => client.received.length >= 2000, "some of the stream");
    const link = proxy.connections[0];
    await until(() => link.heldBytes > 0, "bytes held");
    const held = link.heldBytes;
    proxy.cut();
    await until(() => client.closed && stream.sockets[0].closed, "both sides closed");
    assert.ok(proxy.droppedBytes >= held && held > 0, "the bytes in flight were dropped");
    // At most what was passed on: a reset may also discard what the client had not read yet.
    assert.equal(link.bytesDown + held, link.bytesRead);
    assert.ok(client.received.length + proxy.droppedBytes <= link.bytesRead, "nothing dropped arrived");
  } finally {
    await proxy.stop();
    await stream.close();
  }
});

test("chaos proxy: cut(predicate) cuts only the connections it picks", async () => {
  const echo = await serve((s) => s.pipe(s));
  const proxy = await ChaosProxy.start(echo.port);
  try {
    const a = await dial(proxy.port);
    const b = await dial(proxy.port);
    await until(() => proxy.connections.length === 2, "two links");
    const first = Math.min(...proxy.connections.map((c) => c.id));
    assert.equal(proxy.cut((c) => c.id === first), 1);
    await until(() => a.closed, "a cut");
    b.socket.write("still here");
    await until(() => b.received.toString() === "still here", "b still forwarding");
    assert.equal(b.closed, false);
    assert.equal(proxy.cuts, 1);
    b.socket.destroy();
  } finally {
    await proxy.stop();
    await echo.close();
  }
});

test("chaos proxy: the monkey cuts every connection after a random while, new ones too", async () => {
  const echo = await serve((s) => s.pipe(s));
  const proxy = await ChaosProxy.start(echo.port);
  try {
    const before = await dial(proxy.port);
    const started = performance.now();
    proxy.startMonkey(50, 150);
    const after = await dial(proxy.port);
    await until(() => before.closed && after.closed, "both cut by the monkey", 2000);
    const took = performance.now() - started;
    assert.ok(took >= 45, `cut after ${took} ms, not before the minimum`);
    assert.equal(proxy.cuts, 2);
    proxy.stopMonkey();
    const spared = await dial(proxy.port);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(spared.closed, false, "no cuts once the monkey stopped");
    spared.socket.destroy();
  } finally {
    await proxy.stop();
    await echo.close();
  }
});
