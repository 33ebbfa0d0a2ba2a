/**
 * The endpoint contract kit against the memory endpoint. Its bus lives in the process, so it is
 * not durable across a restart (a restarted node starts with an empty bus).
 */
import { encodeText } from "../../src/core/payload.ts";
import { MemoryEndpoint } from "../../src/endpoints/memory/memory-endpoint.ts";
import { endpointContract } from "./endpoint-contract.ts";

endpointContract("memory", () => {
  let current: MemoryEndpoint | undefined;
  return Promise.resolve({
    make() {
      current = new MemoryEndpoint({
        name: "bus",
        publishTopic: "inbox/{clientId}",
        subscribeTopic: "inbox/{clientId}",
      });
      return current;
    },
    // Publishing as the client itself with a per-client topic reaches exactly that client.
    inject: async (clientId, text) => {
      await current!.publish(clientId, { payload: encodeText(text) }, {});
    },
    durable: false,
    clientId: (label) => `${label}-${crypto.randomUUID()}`,
  });
});
