/**
 * The `nats` endpoint type: NATS JetStream, publishes acked by the stream, one durable pull
 * consumer per client. It is registered like any other type (one line in src/endpoints/builtins.ts).
 * Like the rest of this folder it imports only from src/plugin.ts, the public surface: the same
 * files could sit outside the repo and be loaded with `endpoint_modules:`.
 */
import {
  boolean,
  defineEndpoint,
  duration,
  expected,
  nonEmptyList,
  positiveInt,
  text,
  v,
} from "../../plugin.ts";
import { NatsEndpoint } from "./nats-endpoint.ts";

const SERVER = 'a NATS server "host:port" or nats:// URL';
const server = v.pipe(
  v.string(expected(SERVER)),
  v.regex(/^((nats|tls|wss?):\/\/)?[^\s/]+:\d{1,5}$/, expected(SERVER)),
);

/** Stream names: no whitespace, `.`, `*`, `>` or path separators. */
const streamName = v.pipe(
  v.string(expected("a stream name of A-Z a-z 0-9 _ -")),
  v.regex(/^[A-Za-z0-9_-]{1,255}$/, expected("a stream name of A-Z a-z 0-9 _ -")),
);

const TOKEN = String.raw`(\{[A-Za-z0-9_]+\}|[^\s.*>{}]+)+`;
/** Dot-separated tokens, each literal text and `{param}`s. */
const subjectTemplate = (wildcards: boolean) => {
  const what = wildcards ? "a subject template (tokens, *, >, {param})" : "a subject template (no wildcards)";
  const token = wildcards ? String.raw`(${TOKEN}|\*)` : TOKEN;
  const tail = wildcards ? String.raw`(\.>)?` : "";
  return v.pipe(
    text(what),
    v.regex(new RegExp(String.raw`^(${token}(\.${token})*${tail}|>)$`), expected(what)),
  );
};

const subject = v.pipe(
  v.string(expected("a subject")),
  v.regex(/^([^\s.*>]+|\*)(\.([^\s.*>]+|\*))*(\.>)?$|^>$/, expected("a subject")),
);

/** How much longer than the reconnection window the server keeps a consumer nobody pulls from. */
const INACTIVE_MARGIN_MS = 5 * 60_000;

export default defineEndpoint({
  type: "nats",
  options: {
    servers: nonEmptyList(server, '"host:port"'),
    /** The stream publishes land in and consumers read from. */
    stream: streamName,
    /** Create the stream when it is missing; false: it must exist (start-up stops otherwise). */
    create_stream: boolean(true),
    /** Subjects of a created stream. Default: each template with its {param} tokens as `*`. */
    stream_subjects: v.optional(nonEmptyList(subject, "subject")),
    publish_subject: subjectTemplate(false),
    subscribe_subject: subjectTemplate(true),
    username: v.optional(v.string(expected("a string"))),
    password: v.optional(v.string(expected("a string"))),
    token: v.optional(v.string(expected("a string"))),
    connect_timeout: duration("10s"),
    /** No JetStream ack by then: OUTCOME_UNKNOWN (it may have been stored). */
    publish_timeout: duration("10s"),
    /** A message handed over and not acked this long is handed out again by the server. */
    ack_wait: duration("5m"),
    /** Handed over and not acked per client, at most: at least delivery.max_in_flight. */
    max_ack_pending: positiveInt(1000),
  },
  create: (entry, ctx) =>
    new NatsEndpoint({
      name: entry.name,
      servers: entry.servers,
      stream: entry.stream,
      createStream: entry.create_stream,
      streamSubjects: entry.stream_subjects,
      publishSubject: entry.publish_subject,
      subscribeSubject: entry.subscribe_subject,
      username: entry.username,
      password: entry.password,
      token: entry.token,
      connectTimeout: entry.connect_timeout,
      publishTimeout: entry.publish_timeout,
      ackWait: entry.ack_wait,
      maxAckPending: entry.max_ack_pending,
      inactiveThreshold: ctx.reconnectionWindow + INACTIVE_MARGIN_MS,
      nodeId: ctx.nodeId,
      logger: ctx.logger,
      scheduler: ctx.scheduler,
    }),
});
