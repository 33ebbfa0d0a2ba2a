/**
 * The metrics registry renders every family with a sample, zeros included, and the engine's
 * mediation_endpoint_up follows each endpoint's readiness check (what GET /readyz shows).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../../src/config/load.ts";
import type { Endpoint, EndpointHealth } from "../../src/core/endpoint.ts";
import { memoryLogger } from "../../src/core/logger.ts";
import { Metrics } from "../../src/core/metrics.ts";
import { VirtualClock } from "../../src/core/virtual-clock.ts";
import { MemoryEndpoint } from "../../src/endpoints/memory/memory-endpoint.ts";
import { Engine } from "../../src/engine.ts";

test("metrics: a counter nobody bumped renders 0; HELP and TYPE once per family", async () => {
  const metrics = new Metrics();
  metrics.counter("a_total", "A");
  const b = metrics.counter("b_total", "B");
  b.inc({ code: "X" });
  b.inc({ code: "X" });
  metrics.collectedCounter("c_total", "C", () => [{ value: 1.5 }]);
  metrics.gauge("d", "D", () => [{ labels: { k: 'q"uote' }, value: 0 }]);
  metrics.gauge("e", "E", () => Promise.reject(new Error("store down")));
  assert.equal(
    await metrics.render(),
    [
      "# HELP a_total A",
      "# TYPE a_total counter",
      "a_total 0",
      "# HELP b_total B",
      "# TYPE b_total counter",
      'b_total{code="X"} 2',
      "# HELP c_total C",
      "# TYPE c_total counter",
      "c_total 1.5",
      "# HELP d D",
      "# TYPE d gauge",
      'd{k="q\\"uote"} 0',
      "# HELP e E",
      "# TYPE e gauge",
      "",
    ].join("\n"),
  );
});

/** An endpoint whose readiness a test sets. */
function probe(name: string, health: () => Promise<EndpointHealth>): Endpoint {
  return {
    name,
    start: () => Promise.resolve(),
    stop: () => Promise.resolve(),
    publish: () => Promise.resolve({}),
    health,
  };
}

test("metrics: mediation_endpoint_up is 1 for a ready endpoint, 0 for one that is not or whose check throws", async () => {
  const { config } = parseConfig("endpoints: [{ name: chat, type: memory }]", {});
  let brokerUp = false;
  const logger = memoryLogger();
  const engine = new Engine(config, {
    scheduler: new VirtualClock(0),
    logger,
    endpoints: [
      new MemoryEndpoint({ name: "chat", queueLimit: 10, queueBytes: 1 << 20, totalBytes: 1 << 20, logger }),
      probe("flaky", () => Promise.resolve(brokerUp ? { ok: true } : { ok: false, detail: "refused" })),
      probe("broken", () => Promise.reject(new Error("boom"))),
    ],
  });
  await engine.start();
  const up = async () =>
    (await engine.metrics.render()).split("\n").filter((l) => l.startsWith("mediation_endpoint_up{"));
  assert.deepEqual(await up(), [
    'mediation_endpoint_up{endpoint="chat"} 1',
    'mediation_endpoint_up{endpoint="flaky"} 0',
    'mediation_endpoint_up{endpoint="broken"} 0',
  ]);
  brokerUp = true;
  assert.ok((await up()).includes('mediation_endpoint_up{endpoint="flaky"} 1'));
  const readiness = await engine.readiness();
  assert.equal(readiness.checks["endpoint:flaky"].ok, true);
  assert.equal(readiness.checks["endpoint:broken"].ok, false);
  await engine.stop();
});
