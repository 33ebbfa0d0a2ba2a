/**
 * scripts/check-links.mjs, the link check of `deno task check`: what it counts as broken, what it
 * leaves alone, and GitHub's heading slugs.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { brokenLinks, slugify } from "../../scripts/check-links.mjs";

type Broken = { file: string; line: number; target: string; problem: string };

/** A tree of markdown files under a fresh temporary folder; removed by the returned function. */
function tree(files: Record<string, string>): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "check-links-"));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(dir, path, ".."), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

test("check-links: GitHub's slugs for headings with code, punctuation, emphasis and repeats", () => {
  assert.equal(slugify("Size the broker's queue for the window"), "size-the-brokers-queue-for-the-window");
  assert.equal(
    slugify("Clustering: several nodes on the Redis session store"),
    "clustering-several-nodes-on-the-redis-session-store",
  );
  assert.equal(slugify("`session.redis`: **the** store"), "sessionredis-the-store");
  assert.equal(slugify("9,000 clients"), "9000-clients");
  assert.equal(slugify("@mediation/client"), "mediationclient");
  assert.equal(slugify("max_in_flight and [a link](x.md)"), "max_in_flight-and-a-link");
  const seen = new Map();
  assert.deepEqual([slugify("Kafka", seen), slugify("Kafka", seen), slugify("Kafka", seen)], [
    "kafka",
    "kafka-1",
    "kafka-2",
  ]);
});

test("check-links: missing files and anchors and links out of the tree are broken; URLs, code and skipped folders are not", () => {
  const { dir, remove } = tree({
    "README.md": [
      "# Title",
      "[ok](docs/a.md#some-heading) [ok too](docs/a.md#some-heading-1) [id](docs/a.md#custom)",
      "[heading with code](docs/a.md#code-and-bold-yes) [folder](docs/) [self](#title) [file](LICENSE#L3)",
      "[no file](docs/missing.md) [no anchor](docs/a.md#nope) [out](../outside.md) [no self](#nope)",
      "[url](https://example.com/x.md) [mail](mailto:a@example.com) `[in code](gone.md)`",
      "```",
      "[in a fence](gone.md)",
      "```",
      "[ref]: docs/gone.md",
    ].join("\n"),
    "LICENSE": "text\n",
    "docs/a.md":
      '# A\n\n## Some heading\n\n## `code` and **bold**: yes\n\n## Some heading\n\n<a id="custom"></a>\n',
    "node_modules/pkg/README.md": "[broken](nowhere.md)\n",
    "ignored/README.md": "[broken](nowhere.md)\n",
    ".gitignore": "ignored/\n*.log\n",
  });
  try {
    const { broken, files } = brokenLinks(dir) as { broken: Broken[]; files: number };
    assert.equal(files, 2, "README.md and docs/a.md; node_modules and .gitignore's folders skipped");
    assert.deepEqual(
      broken.map((b) => `${b.file}:${b.line} ${b.target}: ${b.problem}`),
      [
        "README.md:4 docs/missing.md: no such file: docs/missing.md",
        "README.md:4 docs/a.md#nope: no heading or id for #nope",
        "README.md:4 ../outside.md: points outside the repository",
        "README.md:4 #nope: no heading or id for #nope",
        "README.md:9 docs/gone.md: no such file: docs/gone.md",
      ],
    );
  } finally {
    remove();
  }
});

test("check-links: every relative link in this repository's markdown resolves", () => {
  const { broken, checked } = brokenLinks(new URL("../..", import.meta.url).pathname) as {
    broken: Broken[];
    checked: number;
  };
  assert.ok(checked > 50, `links found (${checked})`);
  assert.deepEqual(broken, []);
});
