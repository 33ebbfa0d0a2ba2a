/**
 * The multiplexed protocol's message frame, built in one place for every entrypoint that sends
 * it (WebSocket, multi-endpoint SSE). The payload's JSON is prepared once per message and spliced
 * in here per client: no parse, no object spread, no `JSON.stringify` of client data per delivery.
 */
import type { Delivery } from "./sink.ts";

/**
 * `{"type":"message","endpoint":...,"id":...,"data":...,"encoding"?:"base64","meta"?:{...},"redelivered"?:true}`
 *
 * @example
 * ws.send(messageFrame(delivery));
 */
export function messageFrame(d: Delivery): string {
  const { json, encoding } = d.prepared;
  // Endpoint names and delivery ids are [A-Za-z0-9_.-] (config schema, hub): no escaping needed.
  let frame = `{"type":"message","endpoint":"${d.endpoint}","id":"${d.id}","data":${json}`;
  if (encoding) frame += `,"encoding":"${encoding}"`;
  // meta is flat strings and numbers from the endpoint: stringify cannot recurse deeply.
  if (d.meta) frame += `,"meta":${JSON.stringify(d.meta)}`;
  if (d.redelivered) frame += `,"redelivered":true`;
  return frame + "}";
}
