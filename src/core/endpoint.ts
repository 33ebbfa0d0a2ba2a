/**
 * The Endpoint and LifecycleBinder ports, and the handler endpoints report deliveries through.
 *
 * An endpoint is one configured broker connection (memory bus, MQTT broker, Kafka cluster). The
 * hub knows no broker: it publishes through `Endpoint.publish` and hears back through the
 * `DeliveryHandler` it passes to `start`, as centrifuge's broker reports to its node.
 */

/** A message on its way to a broker. */
export interface OutboundMessage {
  /** The broker payload: `JSON.stringify(data)` of the client's publish frame, or raw bytes. */
  payload: Uint8Array;
}

/** A message a broker handed to a client's consumer. */
export interface InboundMessage {
  payload: Uint8Array;
  /** Broker-specific facts passed to the client as `meta` (topic, partition, offset...). */
  meta?: Record<string, string | number>;
  /**
   * Lets the endpoint acknowledge this message to its broker (PUBACK, offset commit, queue
   * removal). The hub calls it once the message may be let go: right after the write for a
   * client without end-to-end acks, when the client acknowledged it for one with them. Settles
   * come in delivery order, per client and endpoint. A message taken but never settled (the
   * client went away first) stays unacknowledged: suspend leaves it with the broker.
   */
  settle?: () => void;
  /**
   * The message may have been handed to this client before (MQTT DUP, a Kafka offset at or
   * below one delivered earlier, a memory message delivered but not acknowledged). Clients see
   * it as `"redelivered":true`; a message without it is new to the client.
   */
  redelivered?: boolean;
}

/** The broker's confirmation of a publish. */
export interface Receipt {
  /** Broker-specific facts about where the message went (topic, offset...). */
  meta?: Record<string, string | number>;
}

/**
 * How an endpoint hands a consumed message to the hub.
 *
 * `deliver` returns true only when the message was written to the client's live connection;
 * the endpoint acknowledges the broker (PUBACK, offset commit, queue shift) only when the hub
 * calls the message's `settle` (see InboundMessage). False means not written (client away,
 * socket backed up, too many unacknowledged messages): the endpoint keeps the message with the
 * broker and stops handing over more for that client until `resumeClient`.
 */
export interface DeliveryHandler {
  deliver(clientId: string, endpoint: string, message: InboundMessage): boolean;
  /**
   * A client's consumer lost its broker connection after being up: a network or broker failure,
   * or another node taking the client over (the broker ends the older connection of one
   * identity). The endpoint reconnects it as usual; the hub checks whether this node still owns
   * the session and, if not, releases its connection before the reconnect fights the new owner.
   */
  consumerDropped?(clientId: string, endpoint: string): void;
}

export interface EndpointHealth {
  ok: boolean;
  detail?: string;
}

export interface Endpoint {
  readonly name: string;
  /**
   * Connects the shared resources (producer pool); deliveries go to `handler`.
   *
   * A broker that does not answer is not a start-up failure, at start or later: the same case
   * for every endpoint type (BrokerReachability, src/core/reachability.ts). `start` resolves
   * after one attempt (bounded by the endpoint's connect timeout); the endpoint goes on trying
   * with back-off (`retryDelay`: 1 s doubling to 30 s), `health()` says not ok meanwhile (so
   * `/readyz` answers 503 naming it), and it logs one WARN when the broker goes down and one INFO
   * when it answers again, not a line per attempt or connection. While it is down, `publish`,
   * `bindClient` and `resumeClient` reject with UPSTREAM_UNAVAILABLE (temporary), at once when
   * the endpoint knows (a publish already sent when the broker went may be OUTCOME_UNKNOWN). The
   * retry timers are the Scheduler's where the client library lets them be (MQTT's and a
   * connected NATS connection's reconnects run on the library's own timer, with the same delays).
   * `start` rejects only for what no retry can mend, found on a broker that answered (e.g. a
   * NATS stream that must exist and does not).
   */
  start(handler: DeliveryHandler): Promise<void>;
  /** Flushes producers and closes every connection, leaving broker-side client state intact. */
  stop(): Promise<void>;
  /**
   * Publishes one message for `clientId` on the shared producer path and resolves once the
   * broker confirmed it. `params` are the client's binding params (topic templates).
   * Rejects with GatewayError: UPSTREAM_UNAVAILABLE when the broker did not take it (safe to
   * retry), OUTCOME_UNKNOWN when it was sent but not confirmed within the endpoint's publish
   * timeout (a retry may duplicate it), BAD_FRAME when params do not make a valid destination.
   * Every I/O method of an endpoint is bounded by its own configured timeouts (connect_timeout,
   * publish_timeout), so none takes an AbortSignal.
   */
  publish(clientId: string, message: OutboundMessage, params: Record<string, string>): Promise<Receipt>;
  /** Whether the broker is reachable now (`ok`), and what the endpoint holds; for `/readyz`. */
  health(): Promise<EndpointHealth>;
  /** Clients with a binding held by this node, suspended ones included (for /metrics). */
  bindingCount?(): number;
}

/**
 * Implemented by every endpoint that keeps per-client resources. All four methods are
 * idempotent and safe in any order after a crash: suspending an unknown client or unbinding
 * twice is not an error.
 */
export interface LifecycleBinder {
  /** Creates the client's dedicated consumer/subscription and starts delivering. */
  bindClient(clientId: string, params: Record<string, string>): Promise<void>;
  /**
   * The client disconnected: take its consumer offline without deleting broker-side state, so
   * the broker queues its messages (persistent session, committed offsets).
   */
  suspendClient(clientId: string): Promise<void>;
  /**
   * Brings the consumer back (re-creating it from `params` after a restart); queued messages
   * flow in order. Also called after a `deliver` refusal once the connection can take more.
   */
  resumeClient(clientId: string, params: Record<string, string>): Promise<void>;
  /** Deletes everything for the client, broker-side state included. */
  unbindClient(clientId: string, params: Record<string, string>): Promise<void>;
  /**
   * Messages for the client that were lost while it was away and that this endpoint knows of
   * (the memory endpoint's queue_limit overflow, what Kafka's retention deleted past its
   * committed offsets), since the last call; resets the count. For the resume report
   * (`recovered`): called with the binding's params when a session comes back, before the
   * welcome and before `resumeClient`. It may ask the broker (a promise); it should not throw
   * (a failure counts as nothing known). Endpoints that cannot tell leave it out.
   */
  takeLosses?(clientId: string, params: Record<string, string>): number | Promise<number>;
}

export type BindableEndpoint = Endpoint & LifecycleBinder;

export function isBindable(endpoint: Endpoint): endpoint is BindableEndpoint {
  const e = endpoint as Partial<LifecycleBinder>;
  return typeof e.bindClient === "function" && typeof e.suspendClient === "function" &&
    typeof e.resumeClient === "function" && typeof e.unbindClient === "function";
}
