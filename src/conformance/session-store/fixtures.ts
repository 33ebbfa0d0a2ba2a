/**
 * What the session store contract's areas share: the harness a store's test supplies, how a case
 * is registered (a fresh harness per case, closed after it), and the sessions the cases write.
 */
import { test } from "node:test";
import type { Session, SessionStore, Taken } from "../../core/session.ts";

/** One store under test, made fresh for every case. */
export interface StoreHarness {
  store: SessionStore;
  /** Another node's store over the same data (the same object for a single-node store). */
  peer: SessionStore;
  /** Runs after both stores are closed: drop what the case wrote (a key prefix, a database). */
  close?(): Promise<void>;
}

/** What an area's cases are registered with. */
export interface StoreCases {
  /** Registers the case `<kind> store: <name>`: `body` gets a fresh harness's store and peer. */
  run(name: string, body: (store: SessionStore, peer: SessionStore) => Promise<void>): void;
  /** A client ID unique to this run: `<label>-<uuid>`. */
  id(label: string): string;
}

/** Registers each case as a node:test test named after `kind`. */
export function storeCases(kind: string, setup: () => Promise<StoreHarness>): StoreCases {
  return {
    id: (label) => `${label}-${crypto.randomUUID()}`,
    run: (name, body) =>
      test(`${kind} store: ${name}`, async () => {
        const harness = await setup();
        try {
          await body(harness.store, harness.peer);
        } finally {
          await harness.store.close();
          await harness.peer.close();
          await harness.close?.();
        }
      }),
  };
}

/** The cases' clock: times are T0-based, a virtual clock far from the store's own. */
export const T0 = Date.UTC(2026, 0, 1);

/** A connected session of node n1 at T0, epoch 1, with no subscriptions; `patch` overrides. */
export function session(clientId: string, patch: Partial<Session> = {}): Session {
  return {
    clientId,
    state: "connected",
    epoch: 1,
    nodeId: "n1",
    connectedAt: T0,
    subscriptions: [],
    ...patch,
  };
}

/** A session disconnected since a second before `deadline`, its reconnection deadline. */
export function away(clientId: string, deadline: number, epoch = 1): Session {
  return session(clientId, {
    state: "disconnected",
    epoch,
    nodeId: undefined,
    disconnectedAt: deadline - 1000,
    reconnectionDeadline: deadline,
  });
}

/** The session a `connect` took or created, if it did. */
export const sessionOf = (taken: Taken) => "session" in taken ? taken.session : undefined;

/** A session with its undefined fields dropped, as JSON would store it. */
export const plain = (s: Session | undefined) => s && JSON.parse(JSON.stringify(s));
