/**
 * The browser console (`GET /console`, on with `server.console: true`): one page on the client
 * library, with no build step. The library is written as JavaScript (types checked from its JSDoc
 * against `client/mod.d.ts`), so the very files an application imports are served to the page as
 * they are, under `/console/client/`; nothing is transpiled or bundled at start-up or in CI.
 *
 * The page learns the WebSocket path and whether a token is needed from a JSON block written
 * into it here; everything else (endpoints, resume report) comes from the welcome.
 */
import { readFile } from "node:fs/promises";
import type { Hono } from "hono";
import type { Engine } from "../engine.ts";

/** Files the page loads, by their path under /console/. */
const FILES: Record<string, { path: URL; type: string }> = {
  "": { path: new URL("./page.html", import.meta.url), type: "text/html; charset=utf-8" },
  // Where the repository has it, relative to client/: its import of the library resolves alike.
  "src/console/page.js": {
    path: new URL("./page.js", import.meta.url),
    type: "text/javascript; charset=utf-8",
  },
  "page.css": { path: new URL("./page.css", import.meta.url), type: "text/css; charset=utf-8" },
};
for (
  const file of [
    "mod.js",
    "src/ws-client.js",
    "src/sse-client.js",
    "src/backoff.js",
    "src/emitter.js",
    "src/errors.js",
  ]
) {
  FILES[`client/${file}`] = {
    path: new URL(`../../client/${file}`, import.meta.url),
    type: "text/javascript; charset=utf-8",
  };
}

/** Where the page's settings go in page.html. */
const SETTINGS = "<!--gateway-settings-->";

export function consoleRoutes(app: Hono, engine: Engine): void {
  const ws = engine.config.entrypoints.find((e) => e.type === "websocket")?.path;
  const settings = JSON.stringify({ ws: ws ?? null, auth: engine.auth.required });
  const cache = new Map<string, Promise<string>>();
  const read = (name: string) => {
    let text = cache.get(name);
    if (!text) {
      text = readFile(FILES[name].path, "utf8").then((t) =>
        name === ""
          ? t.replace(SETTINGS, `<script type="application/json" id="settings">${settings}</script>`)
          : t
      );
      // A failed read is tried again on the next request, not cached.
      text.catch(() => cache.delete(name));
      cache.set(name, text);
    }
    return text;
  };
  const serve = (name: string) => async () =>
    new Response(await read(name), {
      headers: { "Content-Type": FILES[name].type, "Cache-Control": "no-cache" },
    });
  app.get("/console", serve(""));
  for (const name of Object.keys(FILES)) if (name) app.get(`/console/${name}`, serve(name));
}
