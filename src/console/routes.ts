/**
 * The browser console (`GET /console`, on with `server.console: true`): one page on the client
 * library, with no build step. The library is written as JavaScript (types checked from its JSDoc
 * against `client/mod.d.ts`), so the very files an application imports are served to the page as
 * they are, under `/console/client/`; nothing is transpiled or bundled at start-up or in CI.
 *
 * The page learns the WebSocket path and whether a token is needed from a JSON block written
 * into it here; everything else (endpoints, resume report) comes from the welcome.
 */
import type { Context, Hono } from "hono";
import type { Engine } from "../engine.ts";
// Imported as text, not read from disk at run time: a single executable (`deno compile`,
// `bun build --compile`) carries them, and a bundler sees them.
import pageHtml from "./page.html" with { type: "text" };
import pageCss from "./page.css" with { type: "text" };
import pageJs from "./page.js" with { type: "text" };
import clientMod from "../../client/mod.js" with { type: "text" };
import backoffJs from "../../client/src/backoff.js" with { type: "text" };
import emitterJs from "../../client/src/emitter.js" with { type: "text" };
import errorsJs from "../../client/src/errors.js" with { type: "text" };
import inboxJs from "../../client/src/inbox.js" with { type: "text" };
import outboxJs from "../../client/src/outbox.js" with { type: "text" };
import sseClientJs from "../../client/src/sse-client.js" with { type: "text" };
import wsClientJs from "../../client/src/ws-client.js" with { type: "text" };

const HTML = "text/html; charset=utf-8";
const JS = "text/javascript; charset=utf-8";
const CSS = "text/css; charset=utf-8";
/** Where the page's settings go in page.html. */
const SETTINGS = "<!--gateway-settings-->";

/**
 * The library's modules by file name (client/src/): a file added there is added here, and
 * tests/unit/console-files.test.ts says so if it is not.
 */
export const CLIENT_MODULES: Readonly<Record<string, string>> = {
  "backoff.js": backoffJs,
  "emitter.js": emitterJs,
  "errors.js": errorsJs,
  "inbox.js": inboxJs,
  "outbox.js": outboxJs,
  "sse-client.js": sseClientJs,
  "ws-client.js": wsClientJs,
};

export function consoleRoutes(app: Hono, engine: Engine): void {
  const ws = engine.config.entrypoints.find((e) => e.type === "websocket")?.path;
  const settings = JSON.stringify({ ws: ws ?? null, auth: engine.auth.required });
  const page = pageHtml.replace(
    SETTINGS,
    `<script type="application/json" id="settings">${settings}</script>`,
  );
  const serve = (c: Context, text: string | undefined, type: string) =>
    text === undefined
      ? c.json({
        type: "error",
        code: "UNKNOWN_ENDPOINT",
        message: `no route ${c.req.path}`,
        temporary: false,
      }, 404)
      : c.body(text, 200, { "Content-Type": type, "Cache-Control": "no-cache" });
  app.get("/console", (c) => serve(c, page, HTML));
  app.get("/console/page.css", (c) => serve(c, pageCss, CSS));
  // Where the repository has it, relative to client/, so its import of the library resolves
  // alike on disk and in the page.
  app.get("/console/src/console/page.js", (c) => serve(c, pageJs, JS));
  app.get("/console/client/mod.js", (c) => serve(c, clientMod, JS));
  // The library's modules: by name from the table, so no path leaves client/src/.
  app.get("/console/client/src/:file{[a-z][a-z-]*\\.js}", (c) => {
    const file = c.req.param("file");
    return serve(c, Object.hasOwn(CLIENT_MODULES, file) ? CLIENT_MODULES[file] : undefined, JS);
  });
}
