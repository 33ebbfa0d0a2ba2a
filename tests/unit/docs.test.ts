/**
 * The README's examples agree with each other: what it tells a user to copy works together.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { parse } from "yaml";

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

/** The README's fenced YAML blocks (heredoc bodies included), as written. */
function yamlTexts(): string[] {
  return [...readme.matchAll(/```(yaml|sh)\n([\s\S]*?)```/g)].flatMap(([, lang, body]) =>
    lang === "yaml" ? [body] : [...body.matchAll(/<<'YAML'\n([\s\S]*?)\n\s*YAML\n/g)].map((m) => m[1])
  );
}

const yamlBlocks = () => yamlTexts().map((body) => parse(body.replace(/^ {2}/gm, "")));

test("docs: every YAML example in the README is valid YAML", () => {
  const texts = yamlTexts();
  assert.ok(texts.length > 5);
  for (const text of texts) {
    assert.doesNotThrow(() => parse(text.replace(/^ {2}/gm, "")), `not valid YAML:\n${text}`);
  }
});

type Endpoint = { name: string; subscribe_topic?: string; subscribe_subject?: string };
type ProfileEntry = { name: string; publish: { topic?: string; subject?: string } };

test("docs: the conformance profile publishes where the README's endpoints subscribe", () => {
  const blocks = yamlBlocks() as Array<{ endpoints?: Array<Endpoint | ProfileEntry> }>;
  const endpoints = blocks.find((b) => b?.endpoints?.some((e) => "type" in e))?.endpoints as Endpoint[];
  const profile = blocks.find((b) => b?.endpoints?.some((e) => "publish" in e))?.endpoints as ProfileEntry[];
  assert.ok(endpoints, "the README has an endpoints example");
  assert.ok(profile, "the README has a conformance profile example");
  let compared = 0;
  for (const entry of profile) {
    const target = entry.publish.topic ?? entry.publish.subject;
    if (target === undefined) continue;
    const endpoint = endpoints.find((e) => e.name === entry.name);
    assert.ok(endpoint, `the profile's endpoint ${entry.name} is in the README's endpoints example`);
    assert.equal(
      target,
      endpoint.subscribe_topic ?? endpoint.subscribe_subject,
      `profile publishes for ${entry.name} where that endpoint subscribes`,
    );
    compared++;
  }
  assert.equal(compared, 3, "mqtt, kafka and nats endpoints compared");
});

test("docs: config.yaml's commented Kafka endpoint subscribes where the README's does", () => {
  const config = readFileSync(new URL("../../config.yaml", import.meta.url), "utf8");
  const topic = config.match(/#\s+subscribe_topic: "(orders\.[^"]*)"/)?.[1];
  assert.equal(topic, "orders.{clientId}.down");
});

test("docs: the README's Node.js version is package.json's, the license it names is there, no link leaves the repository", () => {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
  const stated = readme.match(/Node\.js \((\d+)\+\)/)?.[1];
  assert.equal(`>=${stated}`, pkg.engines.node, "README's Node.js version agrees with engines.node");
  assert.equal(pkg.license, "Apache-2.0");
  const license = readFileSync(new URL("../../LICENSE", import.meta.url), "utf8");
  assert.match(license, /Apache License\s+Version 2\.0/);
  assert.doesNotMatch(readme, /\.\.\/shared\//, "the README points nowhere outside the repository");
});
