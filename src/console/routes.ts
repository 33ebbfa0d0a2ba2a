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
import type { Context, Hono } from "hono";
import type { Engine } from "../engine.ts";

const HTML = "text/html; charset=utf-8";
const JS = "text/javascript; charset=utf-8";
const CSS = "text/css; charset=utf-8";
const CLIENT = new URL("../../client/", import.meta.url);
/** Where the page's settings go in page.html. */
const SETTINGS = "<!--gateway-settings-->";

export function consoleRoutes(app: Hono, engine: Engine): void {
  const ws = engine.config.entrypoints.find((e) => e.type === "websocket")?.path;
  const settings = JSON.stringify({ ws: ws ?? null, auth: engine.auth.required });
  const cache = new Map<string, Promise<string>>();
  /** A file's text, read once; a failed read is tried again on the next request. */
  const read = (url: URL, edit = (text: string) => text) => {
    let text = cache.get(url.href);
    if (!text) {
      text = readFile(url, "utf8").then(edit);
      text.catch(() => cache.delete(url.href));
      cache.set(url.href, text);
    }
    return text;
  };
  const serve = async (c: Context, url: URL, type: string, edit?: (text: string) => string) => {
    try {
      return c.body(await read(url, edit), 200, { "Content-Type": type, "Cache-Control": "no-cache" });
    } catch {
      return c.json({
        type: "error",
        code: "UNKNOWN_ENDPOINT",
        message: `no route ${c.req.path}`,
        temporary: false,
      }, 404);
    }
  };
  const page = (text: string) =>
    text.replace(SETTINGS, `<script type="application/json" id="settings">${settings}</script>`);
  app.get("/console", (c) => serve(c, new URL("./page.html", import.meta.url), HTML, page));
  app.get("/console/page.css", (c) => serve(c, new URL("./page.css", import.meta.url), CSS));
  // Where the repository has it, relative to client/, so its import of the library resolves
  // alike on disk and in the page.
  app.get("/console/src/console/page.js", (c) => serve(c, new URL("./page.js", import.meta.url), JS));
  app.get("/console/client/mod.js", (c) => serve(c, new URL("mod.js", CLIENT), JS));
  // The library's modules: plain names only, so no path leaves client/src/.
  app.get(
    "/console/client/src/:file{[a-z][a-z-]*\\.js}",
    (c) => serve(c, new URL(`src/${c.req.param("file")}`, CLIENT), JS),
  );
}
