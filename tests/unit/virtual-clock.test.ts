import assert from "node:assert/strict";
import { test } from "node:test";
import { VirtualClock } from "../../src/core/virtual-clock.ts";

test("virtual clock: timers run in due order, intervals repeat, clear cancels", async () => {
  const clock = new VirtualClock(1000);
  const seen: string[] = [];
  clock.setTimeout(() => seen.push(`b@${clock.now()}`), 20);
  clock.setTimeout(() => seen.push(`a@${clock.now()}`), 10);
  const every = clock.setInterval(() => seen.push(`i@${clock.now()}`), 15);
  const cancelled = clock.setTimeout(() => seen.push("never"), 5);
  clock.clear(cancelled);
  await clock.advance(31);
  assert.deepEqual(seen, ["a@1010", "i@1015", "b@1020", "i@1030"]);
  assert.equal(clock.now(), 1031);
  clock.clear(every);
  assert.equal(clock.pending, 0);
});

test("virtual clock: async work started by a timer settles before the next timer", async () => {
  const clock = new VirtualClock();
  const seen: number[] = [];
  clock.setTimeout(async () => {
    await Promise.resolve();
    await Promise.resolve();
    seen.push(1);
  }, 10);
  clock.setTimeout(() => seen.push(2), 10);
  await clock.advance(10);
  assert.deepEqual(seen.sort(), [1, 2]);
  const slept = clock.sleep(100).then(() => seen.push(3));
  await clock.advance(99);
  assert.equal(seen.length, 2);
  await clock.advance(1);
  await slept;
  assert.deepEqual(seen, [1, 2, 3]);
});

test("virtual clock: sleep rejects when its signal aborts", async () => {
  const clock = new VirtualClock();
  const controller = new AbortController();
  const slept = clock.sleep(1000, controller.signal);
  controller.abort(new Error("stop"));
  await assert.rejects(slept, /stop/);
  assert.equal(clock.pending, 0);
});
