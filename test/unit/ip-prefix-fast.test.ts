// The prefix check of a long list (src/net/ip.ts plainV4Prefix, one pass over the characters)
// gives the verdicts and texts of the general parser (parsePrefixSlow, node:net), and a config's
// long list (validate-fast.ts) is accepted or refused exactly as zod alone does a short one.
import assert from "node:assert/strict";
import { test } from "node:test";
import { configSchema } from "../../src/config/schema.ts";
import { validateFast } from "../../src/config/validate-fast.ts";
import { parsePrefix, parsePrefixSlow, plainV4Prefix } from "../../src/net/ip.ts";

const ODD = [
  "198.18.0.0/24",
  "198.18.0.1/24",
  "198.18.0.0/15",
  "198.19.0.0/15",
  "198.18.0.0/33",
  "198.18.0.0/32",
  "198.18.0.0/0",
  "0.0.0.0/0",
  "0.0.0.1/0",
  "0.0.0.0",
  "255.255.255.255",
  "255.255.255.255/32",
  "255.255.255.254/31",
  "255.255.255.255/31",
  "256.1.1.1",
  "1.1.1.256/32",
  "01.1.1.1",
  "1.1.1.01",
  "1.1.1.0/024",
  "1.1.1.0/00",
  "1.1.1.1/032",
  "1.1.1.1/",
  "1.1.1.1//32",
  "1.1.1.1/3 2",
  " 1.1.1.1",
  "1.1.1.1 ",
  "1.1.1.1/32 ",
  "1.1.1",
  "1.1.1.1.1",
  "1..1.1",
  "1.1.1.1a",
  "a.b.c.d",
  "",
  "/24",
  "1.1.1.1/-1",
  "1.1.1.1/+8",
  "1.1.1.1/8.0",
  "10.0.0.0/8",
  "10.0.0.0/7",
  "1000.1.1.1",
  "1.1.1.1/100",
  "１.1.1.1",
  "1.1.1.1\n",
  "2001:db8::/32",
  "2001:db8::1/32",
  "2001:DB8::/32",
  "2001:db8:0::/48",
  "::/0",
  "::",
  "::1",
  "::ffff:198.18.0.1",
  "::ffff:198.18.0.0/120",
  "2001:db8::/129",
  "fe80::1%eth0",
  "2001:db8::/032",
  "0x01.1.1.1",
  "1.1.1.1/3e1",
];

const random = (seed: number) => () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;

test("the one-pass IPv4 check agrees with the general parser, also on odd and random texts", () => {
  const r = random(12);
  const chars = "0123456789./ :0012599";
  const fuzz = Array.from({ length: 20_000 }, () =>
    Array.from({ length: 1 + Math.floor(r() * 18) }, () => chars[Math.floor(r() * chars.length)]).join(""),
  );
  const quads = Array.from({ length: 20_000 }, () => {
    const o = () => String(Math.floor(r() * 260));
    return `${o()}.${o()}.${o()}.${o()}${r() < 0.8 ? `/${Math.floor(r() * 35)}` : ""}`;
  });
  let plain = 0;
  for (const s of [...ODD, ...fuzz, ...quads]) {
    const fast = plainV4Prefix(s);
    const slow = parsePrefixSlow(s);
    if (fast) {
      plain++;
      assert.deepEqual(fast, slow, s);
    }
    assert.deepEqual(parsePrefix(s), slow, s);
  }
  assert.ok(plain > 1000, `only ${plain} plain prefixes among the texts`);
});

const config = (destination: string[]) => ({
  version: 1,
  uplinks: { isp1: { interface: "wan1", gateway: "100.64.1.1" } },
  rules: [{ name: "r", via: ["isp1"], destination }],
});

test("a long list and zod alone give the same verdict and config for each odd prefix", () => {
  const filler = Array.from({ length: 40 }, (_, i) => `198.51.${i}.0/24`);
  for (const p of ODD) {
    const byZod = configSchema.safeParse(config([...filler, p]));
    const fast = validateFast(config([...filler, p]));
    assert.equal(fast !== undefined, byZod.success, p);
    if (fast) assert.deepStrictEqual(fast, byZod.data, p);
    const short = configSchema.safeParse(config([p]));
    assert.equal(short.success, byZod.success, p);
  }
});
