/**
 * Process and port helpers for tests that run services of their own.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { connect as tcpConnect, createServer } from "node:net";

/** A TCP port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** Whether a process is still running (a zombie waiting to be reaped has finished). */
export function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/**
 * TCP connections this process has established to 127.0.0.1:`port` (Linux /proc): its socket
 * inodes matched against /proc/net/tcp.
 */
export function connectionsTo(port: number): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      const link = readlinkSync(`/proc/self/fd/${fd}`);
      if (link.startsWith("socket:[")) inodes.add(link.slice(8, -1));
    } catch {
      // Closed since the listing.
    }
  }
  const remote = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  const ESTABLISHED = "01";
  return readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1).filter((line) => {
    const f = line.trim().split(/\s+/);
    return f[2] === remote && f[3] === ESTABLISHED && inodes.has(f[9]);
  }).length;
}
