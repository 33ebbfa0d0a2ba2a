/**
 * PUBACKs sent later than mqtt.js would: for a client with end-to-end acks, a message is
 * PUBACKed when the client acknowledged it, not when mqtt.js handled it.
 */
import mqtt from "mqtt";
import type { MqttClient } from "mqtt";
import { setImmediate } from "node:timers";

/** The mqtt.js version these internals were read in and tested with; package.json pins it. */
export const MQTT_JS_TESTED = "5.16.0";

/**
 * Checks, at start, that mqtt.js still has the internal this file relies on: `_sendPacket`, its
 * own way to write a packet (there is no public one for a PUBACK sent later). Without it deferred
 * PUBACKs could not be sent, and every client with acks would have its messages redelivered for
 * ever; a clear start-up error is better. (`stream.cork`, which only batches PUBACKs, is checked
 * where it is used: without it PUBACKs are written one by one, see corkPubacks.)
 */
export function checkMqttInternals(prototype: object = mqtt.MqttClient.prototype): void {
  if (typeof (prototype as { _sendPacket?: unknown })._sendPacket !== "function") {
    throw new Error(
      `the installed mqtt.js has no MqttClient._sendPacket, which the MQTT endpoint needs to send ` +
        `PUBACKs after a client's ack; install mqtt ${MQTT_JS_TESTED}, the version this gateway was tested with`,
    );
  }
}

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
export function corkPubacks(client: MqttClient, onUncorkable: () => void = () => {}): PubackBatch {
  let corked: { uncork(): void } | undefined;
  let uncorkable = false;
  const flush = () => {
    const stream = corked;
    corked = undefined;
    stream?.uncork();
  };
  const hold = () => {
    if (corked) return;
    const stream = (client as unknown as { stream?: { cork?(): void; uncork?(): void } }).stream;
    if (typeof stream?.cork !== "function" || typeof stream.uncork !== "function") {
      // mqtt.js changed its internals: PUBACKs still go out, one write each.
      if (!uncorkable) onUncorkable();
      uncorkable = true;
      return;
    }
    stream.cork();
    corked = stream as { uncork(): void };
    setImmediate(flush);
  };
  client.on("packetreceive", hold);
  return { hold, flush };
}
