/**
 * What a topic's retention deleted of a client's messages while it was away (the resume report,
 * docs/wire-protocol.md "The resume report"): per partition, the messages between the client's
 * committed offset and the log's start, the first offset the broker still has.
 */
import type { Logger } from "../../core/logger.ts";
import type { KafkaWire } from "./wire.ts";

/**
 * Counts the messages of `group` on `topic` that retention deleted before they were committed,
 * and commits the log's start where the committed offset lies below it (with the metadata each
 * offset had), so the client goes on from there; a WARN names each partition and its offsets.
 * Rejects with the Kafka error (nothing moved then).
 */
export async function skipDeleted(
  wire: KafkaWire,
  group: string,
  topic: string,
  log: { logger: Logger; endpoint: string; clientId: string },
): Promise<number> {
  const partitions = (await wire.partitions(topic)).map((l) => l.partition);
  const committed = await wire.committedMarked(group, topic, partitions);
  const known = partitions.filter((p) => committed.get(p)!.offset !== "-1");
  if (known.length === 0) return 0;
  const starts = await wire.offsets(topic, known, "earliest");
  const moved = new Map<number, string>();
  const lines: string[] = [];
  let lost = 0n;
  for (const p of known) {
    const [from, start] = [BigInt(committed.get(p)!.offset), BigInt(starts.get(p) ?? "-1")];
    if (start <= from) continue;
    lost += start - from;
    moved.set(p, String(start));
    lines.push(`${topic}/${p}: ${start - from} (offsets ${from} to ${start - 1n})`);
  }
  if (moved.size === 0) return 0;
  // With the mark each had (shared-fetch.ts): who read for the client last stays as it was.
  await wire.commit(group, topic, moved, (p) => committed.get(p)?.metadata ?? null);
  log.logger.warn(
    `[Kafka] ${log.endpoint}: retention deleted ${lost} messages of ${log.clientId} while it was away (${
      lines.join(", ")
    }); it goes on from the log's start, and its resume report says so`,
  );
  return Number(lost);
}
