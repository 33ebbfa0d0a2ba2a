/**
 * The OpenAPI 3.1 description of the admin API, served at `/admin/openapi.json`.
 * tests/unit/admin.test.ts holds it to the routes src/admin/routes.ts defines, both ways.
 */

const error = { $ref: "#/components/schemas/Error" };
const json = (schema: unknown) => ({ content: { "application/json": { schema } } });
const answer = (description: string, schema: unknown = { type: "object" }) => ({
  description,
  ...json(schema),
});
const clientId = { name: "clientId", in: "path", required: true, schema: { type: "string" } };
const refused = {
  "401": answer("No valid admin token", error),
};
const outcome = (values: string[]) => ({
  type: "object",
  properties: { clientId: { type: "string" }, outcome: { enum: values } },
});
const signalled = answer(
  "The client is live on another node: that node was signalled through the store and acts within a third of a lease",
  outcome(["signalled"]),
);

export const openApi = {
  openapi: "3.1.0",
  info: {
    title: "Mediation engine admin API",
    version: "1",
    description:
      "On the admin listener only (admin.host:admin.port). Every route but the page's files and this " +
      "document needs `Authorization: Bearer <one of admin.tokens>`. See docs/operations.md.",
  },
  components: {
    securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
    schemas: {
      Error: {
        type: "object",
        required: ["type", "code", "message"],
        properties: { type: { const: "error" }, code: { type: "string" }, message: { type: "string" } },
      },
      Subscription: {
        type: "object",
        properties: {
          endpoint: { type: "string" },
          params: { type: "object", additionalProperties: { type: "string" } },
          boundAt: { type: "integer", description: "ms since the epoch" },
        },
      },
      Session: {
        type: "object",
        properties: {
          clientId: { type: "string" },
          state: { enum: ["connected", "disconnected"] },
          subject: { type: ["string", "null"] },
          node: { type: ["string", "null"], description: "The node holding its live connection" },
          epoch: { type: "integer" },
          connectedAt: { type: "integer" },
          disconnectedAt: { type: ["integer", "null"] },
          deadline: {
            type: ["integer", "null"],
            description: "When it expires unless renewed (ms since the epoch)",
          },
          subscriptions: { type: "array", items: { $ref: "#/components/schemas/Subscription" } },
        },
      },
      Node: {
        type: "object",
        properties: {
          id: { type: "string" },
          address: { type: "string" },
          runtime: { type: "string" },
          version: { type: "string" },
          startedAt: { type: "integer" },
          connected: { type: "integer" },
          draining: { type: "boolean" },
          seenAt: { type: "integer" },
          messagesIn: { type: "integer", description: "Published by its clients since it started" },
          messagesOut: { type: "integer", description: "Delivered to its clients since it started" },
          bindings: { type: "object", additionalProperties: { type: "integer" } },
        },
      },
    },
  },
  security: [{ bearer: [] }],
  paths: {
    "/admin": {
      get: {
        summary: "Redirects to /admin/",
        security: [],
        responses: { "302": { description: "To /admin/" } },
      },
    },
    "/admin/": {
      get: {
        summary: "The operator's page (HTML)",
        security: [],
        responses: { "200": { description: "The page" } },
      },
    },
    "/admin/page.js": {
      get: {
        summary: "The page's script",
        security: [],
        responses: { "200": { description: "JavaScript" } },
      },
    },
    "/admin/page.css": {
      get: { summary: "The page's style sheet", security: [], responses: { "200": { description: "CSS" } } },
    },
    "/admin/openapi.json": {
      get: { summary: "This document", security: [], responses: { "200": answer("OpenAPI 3.1") } },
    },
    "/admin/sessions": {
      get: {
        summary: "Sessions of every node sharing the store, a page at a time",
        parameters: [
          { name: "state", in: "query", schema: { enum: ["connected", "disconnected"] } },
          { name: "subject", in: "query", schema: { type: "string" } },
          { name: "node", in: "query", schema: { type: "string" } },
          { name: "endpoint", in: "query", schema: { type: "string" } },
          {
            name: "cursor",
            in: "query",
            schema: { type: "string" },
            description: "The last page's `cursor`",
          },
          {
            name: "limit",
            in: "query",
            schema: { type: "integer", minimum: 1, maximum: 1000, default: 100 },
            description:
              "Sessions read per page (Redis may read more in one step; a filtered page may hold fewer)",
          },
        ],
        responses: {
          "200": answer("A page; `cursor` is null after the last", {
            type: "object",
            properties: {
              sessions: { type: "array", items: { $ref: "#/components/schemas/Session" } },
              cursor: { type: ["string", "null"] },
            },
          }),
          "400": answer("A bad filter or limit", error),
          ...refused,
        },
      },
    },
    "/admin/sessions/{clientId}": {
      get: {
        summary:
          "One session, with its live connection when it is on this node (transport, acks, in-flight counts)",
        parameters: [clientId],
        responses: {
          "200": answer("The session", {
            allOf: [{ $ref: "#/components/schemas/Session" }, {
              type: "object",
              properties: {
                connection: {
                  type: ["object", "null"],
                  properties: {
                    node: { type: "string" },
                    transport: { type: "string" },
                    acks: { type: "boolean" },
                    state: { type: "string" },
                    endpoints: { type: "array", items: { type: "string" } },
                    inFlight: { type: "object", additionalProperties: { type: "integer" } },
                  },
                },
              },
            }],
          }),
          "404": answer("No such session", error),
          ...refused,
        },
      },
      delete: {
        summary:
          "Ends the session: its socket closes with 4404, everything is unbound at the brokers, it is deleted",
        parameters: [clientId],
        responses: {
          "200": answer("Ended", outcome(["ended"])),
          "202": signalled,
          "404": answer("No such session", error),
          "503": answer(
            "A broker could not unbind it, the client came back meanwhile, or a cleanup holds it; try again",
            error,
          ),
          ...refused,
        },
      },
    },
    "/admin/sessions/{clientId}/disconnect": {
      post: {
        summary:
          "Closes the client's connection (4000); the session stays for its window, and the client resumes it",
        parameters: [clientId],
        responses: {
          "200": answer("Disconnected", outcome(["disconnected"])),
          "202": signalled,
          "404": answer("No such session", error),
          "409": answer("The session is not connected", error),
          ...refused,
        },
      },
    },
    "/admin/sessions/{clientId}/messages": {
      post: {
        summary:
          "Writes a message to the client's live connection, as from `endpoint` (no broker; a client away misses it)",
        parameters: [clientId],
        requestBody: {
          required: true,
          ...json({
            type: "object",
            required: ["endpoint", "data"],
            properties: { endpoint: { type: "string" }, data: {} },
          }),
        },
        responses: {
          "200": answer("Written", outcome(["delivered"])),
          "202": signalled,
          "400": answer("A bad body", error),
          "404": answer("No such session or endpoint", error),
          "409": answer("Not connected, or not taking that endpoint now", error),
          ...refused,
        },
      },
    },
    "/admin/endpoints/{name}/messages": {
      post: {
        summary:
          "Publishes to an endpoint's broker, as a client would (the topic template gets `params` and `clientId`)",
        parameters: [{ name: "name", in: "path", required: true, schema: { type: "string" } }],
        requestBody: {
          required: true,
          ...json({
            type: "object",
            required: ["data"],
            properties: {
              data: {},
              params: { type: "object", additionalProperties: { type: "string" } },
              clientId: { type: "string", default: "admin" },
            },
          }),
        },
        responses: {
          "200": answer("The broker's receipt"),
          "400": answer("A bad body", error),
          "404": answer("No such endpoint", error),
          "503": answer("The broker is unavailable", error),
          ...refused,
        },
      },
    },
    "/admin/nodes": {
      get: {
        summary: "The nodes sharing the store (each announces itself every third of a lease)",
        responses: {
          "200": answer("The nodes", {
            type: "object",
            properties: {
              nodes: { type: "array", items: { $ref: "#/components/schemas/Node" } },
              self: { type: "string" },
            },
          }),
          ...refused,
        },
      },
    },
    "/admin/stats": {
      get: {
        summary:
          "This node's figures: connections, sessions by state (the store's), bindings and messages per endpoint",
        responses: { "200": answer("The figures"), ...refused },
      },
    },
    "/admin/drain": {
      post: {
        summary:
          "Drains this node: /readyz 503, new connections refused, clients closed with 1001 in waves over " +
          "admin.drain_time, then the process exits 0",
        responses: { "202": answer("Draining"), ...refused },
      },
    },
  },
} as const;
