/**
 * The mqtt.js options every connection of one MQTT endpoint shares, built once per endpoint:
 * consumers are opened per client, so nothing here may cost per bind.
 */
import type { IClientOptions } from "mqtt";

/**
 * The broker URL as mqtt.js's `connect` takes it apart (protocol, host, port, path, query,
 * auth), parsed once: given a URL string, mqtt.js parses it again for every connection, with the
 * deprecated `url.parse` (Bun captures a stack trace for its deprecation check on each call).
 * `auth` is left for mqtt.js to split into username and password, as it does for a URL.
 *
 * @example
 * mqtt.connect({ ...brokerOptions("mqtt://user:pw@localhost:1883"), clientId: "a" });
 */
export function brokerOptions(url: string): IClientOptions {
  const parsed = new URL(url);
  const options: IClientOptions & { auth?: string; query?: Record<string, string> } = {
    protocol: parsed.protocol.replace(/:$/, "") as IClientOptions["protocol"],
    // `url.parse` gives an IPv6 host without its brackets, which is what net.connect takes.
    host: parsed.hostname.replace(/^\[(.*)\]$/, "$1"),
    path: parsed.pathname + parsed.search,
    query: Object.fromEntries(parsed.searchParams),
  };
  if (parsed.port) options.port = Number(parsed.port);
  if (parsed.username) {
    options.auth = decodeURIComponent(parsed.username) +
      (parsed.password ? `:${decodeURIComponent(parsed.password)}` : "");
  }
  return options;
}

/**
 * mqtt.js's `log` option: without it every client makes a `debug` logger of its own, and each
 * packet read or written pays for formatting calls to it even when debug output is off.
 */
export const NO_LOG = (): void => {};
