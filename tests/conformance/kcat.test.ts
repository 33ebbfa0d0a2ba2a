/**
 * kcat (librdkafka, not kafkajs) producing from outside: what another Kafka client writes to a
 * client's topic reaches that client through the gateway, in order, keys and all. On Apache Kafka
 * (KAFKA_BROKERS, 127.0.0.1:9092 by default).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, test } from "node:test";
import type { Gateway } from "../support/gateway-process.ts";
import { startGateway } from "../support/gateway-process.ts";
import { kafkaNamespace, startKafka } from "../support/kafka/cluster.ts";
import type { TestKafka } from "../support/kafka/cluster.ts";
import { currentRuntime } from "../support/runtime.ts";
import { openWelcomed } from "../support/ws-client.ts";
import { kafkaGatewayConfig } from "./kafka-scenarios.ts";

/** Produces `lines` with kcat, each `key:value`; resolves once kcat exited 0. */
function kcatProduce(brokers: string[], topic: string, lines: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const kcat = spawn("kcat", ["-P", "-b", brokers.join(","), "-t", topic, "-K", ":"], {
      stdio: ["pipe", "ignore", "pipe"],
    });
    let stderr = "";
    kcat.stderr!.on("data", (chunk) => (stderr += chunk));
    kcat.on(
      "error",
      (error) =>
        reject(new Error(`kcat could not run (${error.message}): install it, e.g. apt-get install kcat`)),
    );
    kcat.on("close", (code) => code === 0 ? resolve() : reject(new Error(`kcat exited ${code}: ${stderr}`)));
    kcat.stdin!.end(lines.map((line) => `${line}\n`).join(""));
  });
}

let kafka: TestKafka;
let gw: Gateway;
const ns = kafkaNamespace("kcat");
before(async () => {
  kafka = await startKafka();
  gw = await startGateway(currentRuntime, kafkaGatewayConfig(kafka.brokers, ns));
});
after(async () => {
  await gw?.stop();
  await kafka?.stop();
});

test(`kcat (${currentRuntime}): messages kcat produces to a client's topic reach it through the gateway, in order`, async () => {
  const id = `kcat-${crypto.randomUUID().slice(0, 8)}`;
  const { socket } = await openWelcomed(gw.ws, id);
  socket.send({ type: "subscribe", endpoint: "orders", id: "s" });
  const receipt = await socket.next(
    (f) => f.id === "s" && (f.type === "receipt" || f.type === "error"),
    30_000,
  );
  assert.equal(receipt.type, "receipt", JSON.stringify(receipt));
  const payloads = Array.from({ length: 10 }, (_, i) => ({ n: i + 1, from: "kcat" }));
  await kcatProduce(kafka.brokers, `${ns}.${id}.down`, payloads.map((p) => `${id}:${JSON.stringify(p)}`));
  await socket.until(() => socket.messages("orders").length >= 10, 20_000, "10 messages from kcat");
  assert.deepEqual(socket.messages("orders").map((m) => m.data), payloads);
  await socket.close();
});
