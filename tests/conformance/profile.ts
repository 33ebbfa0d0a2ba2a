/**
 * A conformance profile: which endpoints of a gateway to test, and how to put a message in front
 * of a client of each from outside the gateway (`deno task conformance --profile FILE`). YAML:
 *
 * ```yaml
 * endpoints:
 *   - name: inbox                      # memory bus: through the gateway's own HTTP publish
 *     publish: { http: "/publish/inbox?to={clientId}" }
 *   - name: sensors
 *     publish: { mqtt: "mqtt://127.0.0.1:1883", topic: "sensors/{clientId}/down" }
 *   - name: orders
 *     publish: { kafka: ["127.0.0.1:9092"], topic: "orders.{clientId}.down" }
 *   - name: events
 *     publish: { nats: ["127.0.0.1:4222"], subject: "app.{clientId}.down" }
 * ```
 *
 * `{clientId}` in a path, topic or subject is the client the scenario plays.
 */
import { readFileSync } from "node:fs";
import { Kafka, logLevel } from "kafkajs";
import * as v from "valibot";
import { parse as parseYaml } from "yaml";
import { strict, text } from "../../src/config/values.ts";
import { authorized } from "../support/gateway-process.ts";
import { outsideProducer } from "../support/kafka/cluster.ts";
import { outsideClient } from "../support/mqtt.ts";
import { OutsideNats } from "../support/nats.ts";
import type { Inject } from "./ack-scenarios.ts";

const Publish = v.union([
  strict({ http: v.pipe(text("a path"), v.startsWith("/")) }),
  strict({ mqtt: text("an mqtt:// URL"), topic: text("a topic") }),
  strict({ kafka: v.array(text('"host:port"')), topic: text("a topic") }),
  strict({ nats: v.array(text('"host:port"')), subject: text("a subject") }),
], "expected one of { http }, { mqtt, topic }, { kafka, topic }, { nats, subject }");

const ProfileSchema = strict({
  endpoints: v.pipe(
    v.array(strict({ name: text("an endpoint name"), publish: Publish })),
    v.minLength(1),
  ),
});

export interface ProfileEndpoint {
  name: string;
  /** What the profile says publishes reach it through (a matrix label). */
  via: string;
  inject: Inject;
}

const fill = (template: string, id: string) => template.replaceAll("{clientId}", id);

/** Reads and checks a profile. Throws with one line per problem. */
export function loadProfile(path: string): ProfileEndpoint[] {
  const result = v.safeParse(ProfileSchema, parseYaml(readFileSync(path, "utf8")));
  if (!result.success) {
    const problems = result.issues.map((i) => `${v.getDotPath(i) ?? "(top level)"}: ${i.message}`);
    throw new Error(`invalid profile ${path}:\n  ${problems.join("\n  ")}`);
  }
  return result.output.endpoints.map(({ name, publish }) => {
    if ("http" in publish) {
      return {
        name,
        via: "http",
        inject: async (gw, id, payloads) => {
          for (const body of payloads) {
            const response = await fetch(authorized(gw, `${gw.http}${fill(publish.http, id)}`), {
              method: "POST",
              body,
            });
            await response.body?.cancel();
            if (response.status !== 202) throw new Error(`HTTP publish answered ${response.status}`);
          }
        },
      };
    }
    if ("mqtt" in publish) {
      return {
        name,
        via: "mqtt",
        inject: async (_gw, id, payloads) => {
          const client = await outsideClient(publish.mqtt);
          for (const p of payloads) await client.publishAsync(fill(publish.topic, id), p, { qos: 1 });
          await client.endAsync();
        },
      };
    }
    if ("kafka" in publish) {
      return {
        name,
        via: "kafka",
        inject: async (_gw, id, payloads) => {
          const producer = await outsideProducer(
            new Kafka({ brokers: publish.kafka, logLevel: logLevel.NOTHING }),
          );
          await producer.send({
            topic: fill(publish.topic, id),
            messages: payloads.map((value) => ({ key: id, value })),
          });
          await producer.disconnect();
        },
      };
    }
    return {
      name,
      via: "nats",
      inject: async (_gw, id, payloads) => {
        const nats = await OutsideNats.connect(publish.nats);
        for (const p of payloads) await nats.publish(fill(publish.subject, id), p);
        await nats.close();
      },
    };
  });
}
