/**
 * The docs' examples agree with each other: what they tell a user to copy works together. The
 * examples live in README.md, docs/ (one page per endpoint type under docs/endpoints/),
 * CONTRIBUTING.md (the conformance profile) and client/README.md.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { parse } from "yaml";

const root = new URL("../../", import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), "utf8");
const pages = (dir: string) =>
  readdirSync(new URL(dir, root)).filter((name) => name.endsWith(".md")).map((name) => `${dir}${name}`);

const endpointPages = pages("docs/endpoints/");
/** Every markdown file of the user's documentation. */
const docFiles = ["README.md", "CONTRIBUTING.md", "client/README.md", ...pages("docs/"), ...endpointPages];

/** The fenced YAML blocks of these files (heredoc bodies included), as written. */
function yamlTexts(files: string[]): string[] {
  return files.flatMap((file) =>
    [...read(file).matchAll(/```(yaml|sh)\n([\s\S]*?)```/g)].flatMap(([, lang, body]) =>
      lang === "yaml" ? [body] : [...body.matchAll(/<<'YAML'\n([\s\S]*?)\n\s*YAML\n/g)].map((m) => m[1])
    )
  );
}

const yamlBlocks = (files: string[]) => yamlTexts(files).map((body) => parse(body.replace(/^ {2}/gm, "")));

test("docs: every YAML example in the docs is valid YAML", () => {
  const texts = yamlTexts(docFiles);
  assert.ok(texts.length > 5);
  for (const text of texts) {
    assert.doesNotThrow(() => parse(text.replace(/^ {2}/gm, "")), `not valid YAML:\n${text}`);
  }
});

type Endpoint = { name: string; type: string; subscribe_topic?: string; subscribe_subject?: string };
type ProfileEntry = { name: string; publish: { topic?: string; subject?: string } };
type Blocks = Array<{ endpoints?: Array<Endpoint | ProfileEntry> }>;

/** The endpoints the endpoint pages' examples configure, by name. */
function documentedEndpoints(): Map<string, Endpoint> {
  const endpoints = new Map<string, Endpoint>();
  for (const block of yamlBlocks(endpointPages) as Blocks) {
    for (const entry of block?.endpoints ?? []) {
      if ("type" in entry) endpoints.set(entry.name, entry);
    }
  }
  return endpoints;
}

test("docs: the conformance profile publishes where the endpoint pages' endpoints subscribe", () => {
  const endpoints = documentedEndpoints();
  const profile = (yamlBlocks(["CONTRIBUTING.md"]) as Blocks)
    .find((b) => b?.endpoints?.some((e) => "publish" in e))?.endpoints as ProfileEntry[];
  assert.ok(endpoints.size >= 4, "docs/endpoints/ has an example of each endpoint type");
  assert.ok(profile, "CONTRIBUTING.md has a conformance profile example");
  let compared = 0;
  for (const entry of profile) {
    const target = entry.publish.topic ?? entry.publish.subject;
    if (target === undefined) continue;
    const endpoint = endpoints.get(entry.name);
    assert.ok(endpoint, `the profile's endpoint ${entry.name} is in an endpoint page's example`);
    assert.equal(
      target,
      endpoint.subscribe_topic ?? endpoint.subscribe_subject,
      `profile publishes for ${entry.name} where that endpoint subscribes`,
    );
    compared++;
  }
  assert.equal(compared, 3, "mqtt, kafka and nats endpoints compared");
});

test("docs: config.yaml's commented Kafka endpoint subscribes where docs/endpoints/kafka.md's does", () => {
  const config = read("config.yaml");
  const topic = config.match(/#\s+subscribe_topic: "(orders\.[^"]*)"/)?.[1];
  assert.equal(topic, "orders.{clientId}.down");
  const kafka = [...documentedEndpoints().values()].find((e) => e.type === "kafka");
  assert.equal(kafka?.subscribe_topic, topic, "the Kafka page's example subscribes there too");
});

test("docs: the README's Node.js version is package.json's, the license it names is there, no link leaves the repository", () => {
  const pkg = JSON.parse(read("package.json"));
  const stated = read("README.md").match(/Node\.js \((\d+)\+\)/)?.[1];
  assert.equal(`>=${stated}`, pkg.engines.node, "README's Node.js version agrees with engines.node");
  assert.equal(pkg.license, "Apache-2.0");
  const license = read("LICENSE");
  assert.match(license, /Apache License\s+Version 2\.0/);
  for (const file of docFiles) {
    assert.doesNotMatch(read(file), /\.\.\/shared\//, `${file} points nowhere outside the repository`);
  }
});
