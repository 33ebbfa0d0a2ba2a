/**
 * Node: a module imported as text (`import page from "./page.html" with { type: "text" }`, as
 * Deno and Bun take it) loads as a module whose default export is the file's text. Node has no
 * such import of its own, so this hook is registered before the modules that use one load: by
 * src/main.ts before it imports the engine, and with `--import` where the tests run under Node.
 */
import { readFileSync } from "node:fs";
// The default export, not `{ registerHooks }`: Bun has no registerHooks, and `bun build --compile`
// links src/main.ts's every import, this module's too, though only Node runs it.
import module from "node:module";
import { fileURLToPath } from "node:url";

module.registerHooks({
  load(url, context, nextLoad) {
    if (context.importAttributes?.type !== "text") return nextLoad(url, context);
    const text = readFileSync(fileURLToPath(url), "utf8");
    return { format: "module", source: `export default ${JSON.stringify(text)};`, shortCircuit: true };
  },
});
