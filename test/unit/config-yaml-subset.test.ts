// The one-pass reader of the YAML subset configs are written in (src/config/yaml-subset.ts) gives
// exactly what `yaml` gives, or nothing: on the examples, on hand-picked corner cases, and on
// thousands of random texts (random trees in random block and flow styles, then mutated).
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { parseDocument } from "yaml";
import { parseConfigSource } from "../../src/config/load.ts";
import { subsetYaml } from "../../src/config/yaml-subset.ts";

/** yaml's reading, or undefined when yaml reports an error. */
function reference(text: string): { value: unknown } | undefined {
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) return undefined;
  try {
    return { value: doc.toJS({ maxAliasCount: 100 }) };
  } catch {
    return undefined;
  }
}

/** The subset reader agrees with yaml, or gives up; returns whether it read the text. */
function agrees(text: string): boolean {
  const got = subsetYaml(text);
  if (got === undefined) return false;
  const ref = reference(text);
  assert.ok(ref, `yaml rejects what the subset reader read:\n${text}`);
  assert.deepStrictEqual(got, ref.value, text);
  return true;
}

const examples = readdirSync(new URL("../../examples", import.meta.url))
  .filter((f) => f.endsWith(".yaml"))
  .map((f) => readFileSync(new URL(`../../examples/${f}`, import.meta.url), "utf8"));

test("every example config is read by the subset reader, as yaml reads it", () => {
  assert.ok(examples.length >= 5);
  for (const text of examples) assert.ok(agrees(text), text.slice(0, 200));
});

test("corner cases: the same values as yaml, or left to yaml", () => {
  const read = [
    "a: 1\nb: -1\nc: +2\nd: 0x1F\ne: 0o17\nf: 1.5\ng: 1e3\nh: .5\ni: 1.\nj: .inf\nk: -.Inf\nl: .nan\n",
    "a: ~\nb: null\nc: NULL\nd:\ne: true\nf: False\ng: yes\nh: on\ni: y\nj: 007\nk: -0\nl: 1_000\n",
    "a: ::1\nb: -x\nc: --arg\nd: a#b\ne: a # comment\nf: a, b\ng: x]y\nh: a b  c\ni: 1.2.3\nj: 'it''s'\nk: \"q #\"\n",
    "a: [1, b, 'c', \"d\", [e], {f: g}]\nb: {x: [1, 2], y: {z: ~}}\nc: []\nd: {}\ne: [ a , b ]\n",
    "list:\n- a\n- b\nmap:\n  - x: 1\n    y: 2\n  -   z: 3\n  -\n    w: 4\n  - # comment\n    v: 5\n  -\n",
    "a:\n  b:\n    c: 1\n  # comment at any indent\n      # here too\n  d: [2001:db8::1, '[2001:db8::1]:80']\n",
    "a: 1\r\nb:\r\n  - c\r\n",
    "constructor: 1\ntoString: 2\nhasOwnProperty: x\n",
    "- 1\n- - 2\n",
    "a: 'x' # c\nb: [a]   # c\n",
    "key:    spaced\n",
    // Only spaces are cut around values: YAML keeps other white space.
    "a: b\u00a0\nc: [d\u00a0, e]\nf: g\u2003 # x\nh: \u00a0i\n",
    "a: b:c\nb: http://x/y\nc: 1:2\n",
  ];
  let n = 0;
  for (const text of read) if (agrees(text)) n++;
  // Most of these are inside the subset.
  assert.ok(n >= read.length - 2, `read ${n} of ${read.length}`);
  const left = [
    "a: &x 1\nb: *x\n",
    "a: !!str 1\n",
    "a: |\n  text\n",
    "a: >\n  text\n",
    "a: plain\n  continued\n",
    "a: 'multi\n  line'\n",
    'a: "esc\\n"\n',
    "a: [1,\n  2]\n",
    "%YAML 1.2\n---\na: 1\n",
    "---\na: 1\n",
    "a: 1\na: 2\n",
    "? a\n: b\n",
    '"a": 1\n',
    "1: a\n",
    "true: a\n",
    "__proto__: {}\n",
    "a:\tb\n",
    "a: b: c\n",
    "a: [a, ]\n",
    "a: {a:1}\n",
    "a: [2001:db8::1]:80\n",
    "a: @x\n",
    "a: `x\n",
    "a: - b\n",
    "\ufeffa: 1\n",
    "",
    "# only a comment\n",
    "a: 1\n b: 2\n",
    "- a\nb: 1\n",
    "- a: 1\n - b\n",
    "- a: 1\n b: 2\n",
    "a:\n    b: 1\n  c: 2\n",
    "a: [1, 2] [3]\n",
    "a: {b: 1}x\n",
    "a: ['x' y]\n",
    "a: 'x'y\n",
  ];
  for (const text of left) {
    const got = subsetYaml(text);
    if (got !== undefined) agrees(text);
  }
  for (const text of left.slice(0, 14)) assert.equal(subsetYaml(text), undefined, text);
  // Nesting deeper than the stack: left to yaml, not thrown.
  assert.equal(subsetYaml(`a: ${"[".repeat(200_000)}1${"]".repeat(200_000)}\n`), undefined);
  assert.equal(subsetYaml(`a: ${"{b: ".repeat(100_000)}1${"}".repeat(100_000)}\n`), undefined);
});

// --- random texts ---

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SCALARS = [
  "a",
  "web-1",
  "x_y",
  "1",
  "-1",
  "+1",
  "0",
  "-0",
  "007",
  "0x1f",
  "0X1F",
  "0o17",
  "0o8",
  "1.5",
  "1.",
  ".5",
  "1e3",
  "1E-3",
  "-.5e+2",
  ".inf",
  "-.INF",
  ".NaN",
  ".nan",
  "~",
  "null",
  "Null",
  "nULL",
  "true",
  "TRUE",
  "tRue",
  "false",
  "yes",
  "no",
  "on",
  "y",
  "n",
  "::1",
  "::",
  ":x",
  "-x",
  "--x",
  "- x",
  "?x",
  "? x",
  "a:b",
  "a: b",
  "a:",
  "a #b",
  "a#b",
  "#a",
  "a b",
  "a  b",
  "a,b",
  "a]",
  "a}",
  "[a]",
  "{a: b}",
  "'q'",
  "'q''s'",
  "''",
  '""',
  '"d"',
  '"a#b"',
  '"e\\n"',
  "'a' b",
  "&a",
  "*a",
  "!a",
  "|",
  ">",
  "%a",
  "@a",
  "`a",
  ",a",
  "198.18.0.1:80",
  "[2001:db8::1]:80",
  "'[2001:db8::1]:80'",
  "2001:db8::/32",
  "10.0.0.0/8",
  "http://x:1/",
  "1.2.3",
  "12:30",
  "1_000",
  "é",
  "a'b",
  'a"b',
  "\\",
  "a\\b",
  "x ",
];
const KEYS = [
  "a",
  "b",
  "c",
  "web",
  "listen",
  "backends",
  "x-y",
  "x_y",
  "_k",
  "constructor",
  "toString",
  "__proto__",
  "null",
  "true",
  "True",
  "1",
  "a b",
  "'q'",
  '"d"',
  "é",
  "a.b",
  "-a",
  "k:",
];

interface Tree {
  kind: "map" | "seq" | "scalar";
  entries?: [string, Tree][];
  items?: Tree[];
  text?: string;
}

function tree(r: () => number, depth: number): Tree {
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)] as T;
  const x = r();
  if (depth <= 0 || x < 0.4) return { kind: "scalar", text: pick(SCALARS) };
  const n = Math.floor(r() * 4);
  if (x < 0.7)
    return {
      kind: "map",
      entries: Array.from({ length: n + 1 }, (): [string, Tree] => [pick(KEYS), tree(r, depth - 1)]),
    };
  return { kind: "seq", items: Array.from({ length: n }, () => tree(r, depth - 1)) };
}

/** A one-line flow rendering, when the tree has one. */
function flow(t: Tree): string {
  if (t.kind === "scalar") return t.text as string;
  if (t.kind === "seq") return `[${(t.items ?? []).map(flow).join(", ")}]`;
  return `{ ${(t.entries ?? []).map(([k, v]) => `${k}: ${flow(v)}`).join(", ")} }`;
}

function block(t: Tree, indent: number, r: () => number, lines: string[]): void {
  const pad = " ".repeat(indent);
  const sp = () => (r() < 0.9 ? " " : "  ");
  const comment = () => (r() < 0.1 ? " # c" : "");
  if (t.kind === "map") {
    for (const [k, v] of t.entries ?? []) {
      if (v.kind === "scalar" || r() < 0.25) lines.push(`${pad}${k}:${sp()}${flow(v)}${comment()}`);
      else {
        lines.push(`${pad}${k}:${comment()}`);
        // A list at its key's indent, or deeper.
        block(v, v.kind === "seq" && r() < 0.3 ? indent : indent + 1 + Math.floor(r() * 3), r, lines);
      }
    }
  } else if (t.kind === "seq") {
    for (const v of t.items ?? []) {
      const s = sp();
      if (v.kind === "map" && (v.entries?.length ?? 0) > 0 && r() < 0.6) {
        // `- key: value` with the rest of the mapping under the first key.
        const sub: string[] = [];
        block(v, indent + 1 + s.length, r, sub);
        lines.push(`${pad}-${s}${(sub[0] ?? "").trimStart()}`, ...sub.slice(1));
      } else if (v.kind === "scalar" || r() < 0.3) lines.push(`${pad}-${s}${flow(v)}${comment()}`);
      else {
        lines.push(`${pad}-${comment()}`);
        block(v, indent + 1 + Math.floor(r() * 3), r, lines);
      }
    }
  } else lines.push(`${pad}${flow(t)}`);
}

function mutate(lines: string[], r: () => number): void {
  const i = Math.floor(r() * lines.length);
  const line = lines[i] ?? "";
  const m = r();
  if (m < 0.25) lines[i] = ` ${line}`;
  else if (m < 0.4) lines[i] = line.replace(/^ /, "");
  else if (m < 0.55) lines.splice(i, 0, line);
  else if (m < 0.7) lines.splice(i, 0, `${" ".repeat(Math.floor(r() * 6))}# comment`, "");
  else if (m < 0.85) lines[i] = `${line}${SCALARS[Math.floor(r() * SCALARS.length)]}`;
  else lines.splice(i, 1);
}

test("random texts: the subset reader agrees with yaml wherever it reads", () => {
  const r = rng(11);
  let read = 0;
  const runs = 4000;
  for (let k = 0; k < runs; k++) {
    const lines: string[] = [];
    block({ kind: "map", entries: tree(r, 4).entries ?? [["a", tree(r, 3)]] }, 0, r, lines);
    if (r() < 0.5) for (let m = Math.floor(r() * 3); m >= 0; m--) mutate(lines, r);
    let text = lines.join("\n") + (r() < 0.8 ? "\n" : "");
    if (r() < 0.1) text = text.replaceAll("\n", "\r\n");
    if (agrees(text)) read++;
  }
  // The generator's texts are mostly inside the subset: the comparison is not vacuous.
  assert.ok(read > runs / 4, `read ${read} of ${runs}`);
});

test("a services config is read by the subset reader and validates as the ordinary read does", () => {
  const lines = ["version: 1", "services:"];
  for (let s = 0; s < 50; s++) {
    lines.push(`  s${s}:`, `    listen: 203.0.113.10:${1000 + s}`, "    backends:");
    for (let b = 0; b < 40; b++)
      lines.push(
        `      - { address: 198.18.${s}.${b}:80${b % 3 ? `, weight: ${b}` : ""}${b === 7 ? ", backup: true" : ""} }`,
      );
  }
  const text = lines.join("\n") + "\n";
  assert.ok(agrees(text));
  const got = parseConfigSource(text, "svc.yaml");
  const slow = parseDocument(text).toJS() as { services: Record<string, { backends: object[] }> };
  assert.equal(Object.keys(got.config.services ?? {}).length, 50);
  assert.deepStrictEqual(got.config.services?.s5?.backends[7], {
    address: "198.18.5.7:80",
    weight: 7,
    backup: true,
  });
  assert.deepStrictEqual(got.config.services?.s5?.backends[0], { address: "198.18.5.0:80", weight: 1 });
  assert.equal(slow.services.s5?.backends.length, 40);
});
