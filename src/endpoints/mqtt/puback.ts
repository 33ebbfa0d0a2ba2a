/**
 * PUBACKs sent later than mqtt.js would: for a client with end-to-end acks, a message is
 * PUBACKed when the client acknowledged it, not when mqtt.js handled it.
 */
import type { MqttClient } from "mqtt";

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
