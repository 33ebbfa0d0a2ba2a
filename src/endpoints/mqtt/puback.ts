/**
 * PUBACKs sent later than mqtt.js would: for a client with end-to-end acks, a message is
 * PUBACKed when the client acknowledged it, not when mqtt.js handled it.
 */
import type { MqttClient } from "mqtt";
import { setImmediate } from "node:timers";

/**
 * Passed to mqtt.js's ack callback for a message the client will acknowledge later: mqtt.js
 * then goes on to the next packet without sending a PUBACK (and reports this "error", which the
 * consumer's error handler and `connected` ignore). One object, so no stack trace per message.
 */
export const DEFERRED = new Error("PUBACK deferred until the client acknowledges");

/**
 * Sends a PUBACK that mqtt.js was told to leave out (see DEFERRED). `_sendPacket` is mqtt.js's
 * own way to write a packet; it has no public one for an acknowledgement made later. MQTT wants
 * PUBACKs in the order the messages came, which client acks (cumulative) keep.
 */
export function sendPuback(client: MqttClient, messageId: number | undefined): void {
  (client as unknown as { _sendPacket(packet: object): void })._sendPacket({
    cmd: "puback",
    messageId,
    reasonCode: 0,
  });
}

/** Holds a consumer's PUBACKs for the rest of this turn of the event loop (see corkPubacks). */
export interface PubackBatch {
  /** Corks the socket, if not yet, until this turn of the event loop ends. */
  hold(): void;
  /** Uncorks now: before closing the connection, or the held PUBACKs are lost (and resent). */
  flush(): void;
}

/**
 * Batches PUBACKs into one write per turn of the event loop. mqtt.js handles the packets of a
 * read one per tick and writes each PUBACK with a cork that it lifts on the next tick: one
 * syscall per message. Here the socket is corked when the first packet of a read arrives (and
 * when a client's ack settles deferred PUBACKs: `hold`) and uncorked once every packet of that
 * read was handled (setImmediate runs after the ticks that handle them), so they leave
 * together. Each PUBACK is still written only after its message was written to the client (or
 * acknowledged by it); only the flush waits, and not past this turn of the event loop.
 */
export function corkPubacks(client: MqttClient): PubackBatch {
  let corked: { uncork(): void } | undefined;
  const flush = () => {
    const stream = corked;
    corked = undefined;
    stream?.uncork();
  };
  const hold = () => {
    if (corked) return;
    const stream = (client as unknown as { stream?: { cork?(): void; uncork(): void } }).stream;
    if (!stream?.cork) return;
    stream.cork();
    corked = stream;
    setImmediate(flush);
  };
  client.on("packetreceive", hold);
  return { hold, flush };
}
