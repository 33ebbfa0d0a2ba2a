/** The one SSE parser of the test clients (tests/support/sse-client.ts), as EventSource reads a stream. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseSseBlock, sseBlocks } from "../support/sse-client.ts";

/** A stream that hands over `chunks` one read at a time. */
function reader(chunks: string[]): ReadableStreamDefaultReader<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = chunks.shift();
      if (next === undefined) controller.close();
      else controller.enqueue(encoder.encode(next));
    },
  }).getReader();
}

test("sse parser: blocks split across reads, CR LF (also split between reads) as LF, a half block at the end dropped", async () => {
  const blocks: string[] = [];
  for await (
    const block of sseBlocks(
      reader(["retry: 1000\r", "\n\r\nid: 1.1\nda", "ta: a\n\n: ping\n\nid: 1.2\ndata: half"]),
    )
  ) {
    blocks.push(block);
  }
  assert.deepEqual(blocks, ["retry: 1000", "id: 1.1\ndata: a", ": ping"]);
});

test("sse parser: fields as EventSource reads them", () => {
  assert.deepEqual(parseSseBlock("retry: 1000"), { comments: [], retry: 1000 });
  assert.deepEqual(parseSseBlock(": ping"), { comments: ["ping"] });
  assert.deepEqual(parseSseBlock('event: welcome\ndata: {"a":1}'), {
    comments: [],
    event: { event: "welcome", data: '{"a":1}' },
  });
  // One space after the colon is dropped, no more; data lines join with newlines; `id` alone is an event.
  assert.deepEqual(parseSseBlock("id:7\ndata:  x\ndata\ndata: y"), {
    comments: [],
    event: { event: "message", id: "7", data: " x\n\ny" },
  });
  assert.deepEqual(parseSseBlock("id: 9"), { comments: [], event: { event: "message", id: "9", data: "" } });
});
