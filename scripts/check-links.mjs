#!/usr/bin/env node
/**
 * Every relative link in the repository's markdown files leads somewhere: `deno task check` and
 * `npm run check` run this, so `.ci/run` does.
 *
 * For each markdown file outside node_modules (and .git, and what .gitignore's plain folder
 * names list): every inline link, image and reference definition whose target is not a URL must
 * name a file or folder inside the repository, and a `#anchor` must name a heading (by GitHub's
 * slug) or an `id`/`name` attribute of the markdown file it points into. Links inside code (fenced
 * blocks, inline code spans) are text, not links. Prints one line per broken link and exits 1;
 * no dependencies, so it runs under Node.js, Deno and Bun alike.
 *
 * @example
 * node scripts/check-links.mjs          # checks the repository this script is in
 * node scripts/check-links.mjs DIR      # checks another tree
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

/** Folder names never searched: dependencies, git's own, and .gitignore's plain folder entries. */
function skippedFolders(root) {
  const skipped = new Set(["node_modules", ".git"]);
  const ignore = join(root, ".gitignore");
  if (existsSync(ignore)) {
    for (const line of readFileSync(ignore, "utf8").split("\n")) {
      const name = line.trim().replace(/^\//, "").replace(/\/$/, "");
      if (name && !/[*?[!#]/.test(name) && !name.includes("/")) skipped.add(name);
    }
  }
  return skipped;
}

/** Every markdown file under `dir`, as absolute paths. */
function markdownFiles(dir, skipped) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return skipped.has(entry.name) ? [] : markdownFiles(path, skipped);
    return /\.md$/i.test(entry.name) ? [path] : [];
  });
}

/**
 * The markdown's lines with fenced code blocks blanked (kept as empty lines, so line numbers
 * stay), and whether each line was in a fence.
 */
function withoutFences(text) {
  let fence = null;
  return text.split("\n").map((line) => {
    const marker = line.match(/^\s*(`{3,}|~{3,})/);
    if (fence) {
      if (marker && marker[1][0] === fence[0] && marker[1].length >= fence.length) fence = null;
      return "";
    }
    if (marker) {
      fence = marker[1];
      return "";
    }
    return line;
  });
}

/** A line with its inline code spans blanked out (same length, so columns stay). */
function withoutCodeSpans(line) {
  return line.replace(/(`+)([\s\S]*?[^`])\1(?!`)/g, (span) => " ".repeat(span.length));
}

/**
 * GitHub's anchor for a heading: its text as rendered (code spans, emphasis and links reduced to
 * their text), lowercased, every character that is not a letter, digit, mark, `_`, `-` or space
 * removed, spaces turned into `-`; a repeated slug gets `-1`, `-2`, ...
 */
export function slugify(heading, seen = new Map()) {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1") // links and images: their text
    .replace(/<[^>]+>/g, "") // inline HTML tags
    .replace(/`([^`]*)`/g, "$1") // code spans: their content
    .replace(/(\*\*|__|\*|~~)/g, ""); // emphasis markers
  const base = text.trim().toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc}\- ]/gu, "").replace(/ /g, "-");
  const count = seen.get(base) ?? 0;
  seen.set(base, count + 1);
  return count === 0 ? base : `${base}-${count}`;
}

/** The anchors a markdown file offers: its headings' slugs and its HTML `id` / `name` attributes. */
function anchorsOf(file, anchorCache) {
  if (anchorCache.has(file)) return anchorCache.get(file);
  const anchors = new Set();
  const seen = new Map();
  const text = readFileSync(file, "utf8");
  for (const line of withoutFences(text)) {
    const heading = line.match(/^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$/);
    if (heading) anchors.add(slugify(heading[1], seen));
  }
  for (const m of text.matchAll(/<[a-z][^>]*\s(?:id|name)\s*=\s*["']([^"']+)["']/gi)) anchors.add(m[1]);
  anchorCache.set(file, anchors);
  return anchors;
}

/** The link targets of one markdown file, with their line numbers. */
function linksOf(text) {
  const links = [];
  withoutFences(text).forEach((raw, index) => {
    const line = withoutCodeSpans(raw);
    // Inline links and images: [text](target "title") or [text](<target>).
    for (const m of line.matchAll(/\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+["'(][^)]*)?\)/g)) {
      links.push({ target: m[1].replace(/^<|>$/g, ""), line: index + 1 });
    }
    // Reference definitions: [label]: target
    const ref = line.match(/^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)/);
    if (ref) links.push({ target: ref[1].replace(/^<|>$/g, ""), line: index + 1 });
  });
  return links;
}

/** What is wrong with one link of `file`, or undefined when it resolves. */
function problem(root, file, target, anchorCache) {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith("//")) return undefined; // a URL
  const hash = target.indexOf("#");
  const pathPart = decodeURIComponent(hash < 0 ? target : target.slice(0, hash)).replace(/\?.*$/, "");
  const anchor = hash < 0 ? undefined : decodeURIComponent(target.slice(hash + 1));
  const resolved = pathPart === ""
    ? file
    : pathPart.startsWith("/")
    ? join(root, pathPart)
    : resolve(dirname(file), pathPart);
  const inside = relative(root, resolved);
  if (inside.startsWith("..") || resolve(root, inside) !== resolved) return "points outside the repository";
  if (!existsSync(resolved)) return `no such file: ${inside.split(sep).join("/") || "."}`;
  if (anchor === undefined || anchor === "") return undefined;
  if (statSync(resolved).isDirectory() || !/\.md$/i.test(resolved)) return undefined; // #L12 and such
  return anchorsOf(resolved, anchorCache).has(anchor) ? undefined : `no heading or id for #${anchor}`;
}

/**
 * The broken relative links of every markdown file under `root`, each with the file (relative to
 * `root`, `/`-separated), its line, the link's target and what is wrong with it.
 */
export function brokenLinks(root) {
  root = resolve(root);
  const anchorCache = new Map();
  const files = markdownFiles(root, skippedFolders(root)).sort();
  const broken = [];
  let checked = 0;
  for (const file of files) {
    for (const { target, line } of linksOf(readFileSync(file, "utf8"))) {
      checked++;
      const wrong = problem(root, file, target, anchorCache);
      if (wrong) {
        broken.push({ file: relative(root, file).split(sep).join("/"), line, target, problem: wrong });
      }
    }
  }
  return { broken, checked, files: files.length };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { broken, checked, files } = brokenLinks(
    process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), ".."),
  );
  for (const b of broken) console.error(`${b.file}:${b.line}: ${b.target}: ${b.problem}`);
  if (broken.length > 0) {
    console.error(`${broken.length} broken link${broken.length === 1 ? "" : "s"} in ${files} markdown files`);
    process.exit(1);
  }
  console.log(`links: ${checked} checked in ${files} markdown files, none broken`);
}
