/**
 * A client that publishes and never reads, run as a process of its own by the limits suite, so
 * its sending does not slow the clients being measured. It connects, stops reading, and sends up
 * to `count` publishes (each with a long id, so each is answered) until it is done, cut off (a
 * failed write), or the gateway stops reading from it (1 s without taking more); then it prints
 * `{"flooded":true}`, reads what it was sent, and prints one JSON line: how far it got, for how
 * long the gateway took its frames (`floodMs`, from the `{"flooding":true}` it prints first), and
 * how the gateway ended it.
 *
 * Frames are built once, in batches, and written a batch at a time (ids repeat every batch; a
 * repeated id is answered all the same), so the flood costs this process little CPU: on a
 * shared machine the figures are then about the gateway.
 *
 * Usage: `deno run -A tests/support/ws-flood.ts <ws url> <count> <endpoint>` (or `bun run`).
 */
import { Buffer } from "node:buffer";
import process from "node:process";
import { clientFrame, RawWebSocket } from "./raw-clients.ts";

const [url, count, endpoint] = [process.argv[2], Number(process.argv[3]), process.argv[4]];
const BATCH = 200;
const id = "i".repeat(200);
const batch = Buffer.concat(
  Array.from({ length: BATCH }, (_, n) =>
    clientFrame(
      new TextEncoder().encode(JSON.stringify({ type: "publish", endpoint, data: n, id: `${id}${n}` })),
    )),
);
const socket = await RawWebSocket.open(url);
console.log(JSON.stringify({ flooding: true }));
const started = performance.now();
/** When the gateway last took something: past it, a stalled flood is over. */
let lastTaken = started;
let sent = 0;
let stalled = false;
while (sent < count) {
  const taken = await socket.write(batch, 1000);
  if (taken === "gone") break;
  sent += BATCH;
  if (taken === "taken") lastTaken = performance.now();
  if (taken === "stalled") {
    stalled = true;
    break;
  }
}
const floodMs = Math.round(lastTaken - started);
console.log(JSON.stringify({ flooded: true }));
// What the gateway wrote before it gave up on this client, and how it ended the connection.
socket.resume();
const ended = await socket.waitEnded(15_000);
socket.destroy();
console.log(JSON.stringify({
  sent,
  floodMs,
  stalled,
  ended,
  endedAfterMs: socket.endedAfterMs,
  writeError: socket.writeError,
  frames: socket.frames,
  closeFrame: socket.closeFrame,
}));
process.exit(0);
