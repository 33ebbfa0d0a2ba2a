/**
 * A deadline for a kafkajs call that may hang (a disconnect, a metadata request) while the
 * broker is away.
 */

/** Resolves or rejects as `promise` does, or rejects with "timed out after N ms" first. */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
