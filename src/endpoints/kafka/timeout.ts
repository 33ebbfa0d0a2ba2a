/**
 * A deadline for a kafkajs call that may hang (a disconnect, a metadata request) while the
 * broker is away.
 */
import type { Scheduler, TimerId } from "../../core/scheduler.ts";

/** Resolves or rejects as `promise` does, or rejects with "timed out after N ms" first. */
export function withTimeout<T>(promise: Promise<T>, ms: number, scheduler: Scheduler): Promise<T> {
  let timer: TimerId | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = scheduler.setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => scheduler.clear(timer!));
}
