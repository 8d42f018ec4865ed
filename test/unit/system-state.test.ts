import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  STATE_VERSION,
  StateFileError,
  clearState,
  emptyState,
  loadState,
  parseState,
  saveState,
  stateFilePath,
  type State,
} from "../../src/system/state.ts";

async function inTmpStateDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "nflb-state-"));
  const old = process.env.NFLB_STATE_DIR;
  process.env.NFLB_STATE_DIR = join(dir, "run");
  try {
    return await fn(join(dir, "run"));
  } finally {
    if (old === undefined) delete process.env.NFLB_STATE_DIR;
    else process.env.NFLB_STATE_DIR = old;
    await rm(dir, { recursive: true, force: true });
  }
}

const STATE: State = {
  sysctls: { "net/ipv4/ip_forward": "0" },
  tables: { from: 200, to: 203 },
  priorities: { from: 10_000, to: 10_999 },
  addresses: [{ iface: "eth0", cidr: "192.0.2.2/32" }],
  maddrs: [{ iface: "eth0", mac: "01:00:5e:00:00:01" }],
};

test("saved whole with a version; read back the same; no temp file left; missing file is empty", async () => {
  await inTmpStateDir(async (dir) => {
    assert.deepEqual(await loadState(), emptyState());
    await saveState(STATE);
    const raw = JSON.parse(await readFile(await stateFilePath(), "utf8")) as { version: number };
    assert.equal(raw.version, STATE_VERSION);
    assert.deepEqual(await loadState(), STATE);
    await saveState({ ...STATE, tables: null });
    assert.equal((await loadState()).tables, null);
    assert.deepEqual(
      (await readdir(dir)).filter((f) => !f.endsWith(".json")),
      [],
      "only the state file",
    );
    await clearState();
    assert.deepEqual(await loadState(), emptyState());
  });
});

test("a file from before versions existed reads as version 1", () => {
  const legacy = JSON.stringify({ sysctls: { a: "1" }, tables: null, priorities: null, addresses: [] });
  assert.deepEqual(parseState(legacy, "f"), { ...emptyState(), sysctls: { a: "1" } });
});

test("a newer version is refused with a clear message, not guessed at", async () => {
  await inTmpStateDir(async () => {
    await saveState(STATE);
    const p = await stateFilePath();
    await writeFile(p, JSON.stringify({ version: STATE_VERSION + 1, ...STATE, extra: { x: 1 } }));
    await assert.rejects(loadState(), (e: unknown) => {
      assert.ok(e instanceof StateFileError);
      assert.equal(
        e.message.split(" (")[0],
        `state file ${p} has version ${STATE_VERSION + 1}; this nflb understands up to ${STATE_VERSION}`,
      );
      return true;
    });
  });
});

test("an unparsable or malformed file is an error, not an empty state", async () => {
  await inTmpStateDir(async () => {
    await saveState(STATE);
    const p = await stateFilePath();
    await writeFile(p, '{"sysctls": {"net/ipv4/ip_forward": "0"}, "tab');
    await assert.rejects(loadState(), /is not valid JSON .*will not guess/s);
  });
  for (const [text, why] of [
    ["[]", /not a JSON object/],
    ['{"version": "2"}', /bad version/],
    ['{"sysctls": {"a": 1}}', /bad value for sysctl a/],
    ['{"tables": {"from": 1}}', /bad tables range/],
    ['{"addresses": [{"iface": "eth0"}]}', /bad addresses list/],
    ['{"maddrs": "x"}', /bad maddrs list/],
  ] as const)
    assert.throws(() => parseState(text, "f"), why, text);
});

test("a temp file of a writer killed before its rename is removed by the next save; a live one's is kept", async () => {
  await inTmpStateDir(async () => {
    await saveState(STATE);
    const p = await stateFilePath();
    await writeFile(`${p}.999999999.tmp`, "{half");
    await writeFile(`${p}.${process.ppid}.tmp`, "{in flight");
    await saveState(STATE);
    const base = p.slice(p.lastIndexOf("/") + 1);
    const dir = p.slice(0, p.lastIndexOf("/"));
    assert.deepEqual((await readdir(dir)).sort(), [base, `${base}.${process.ppid}.tmp`].sort());
  });
});

test("version 2 records each uplink's slot; a version-1 file reads without them; a bad slot is refused", () => {
  const v2 = JSON.stringify({ version: 2, ...STATE, uplinkSlots: { isp1: 1, lte: 4 } });
  assert.deepEqual(parseState(v2, "f").uplinkSlots, { isp1: 1, lte: 4 });
  assert.equal(parseState(JSON.stringify({ version: 1, ...STATE }), "f").uplinkSlots, undefined);
  for (const bad of [{ isp1: 0 }, { isp1: 1.5 }, { __proto__x: 1 }, { "Bad Name": 1 }, [1]])
    assert.throws(
      () => parseState(JSON.stringify({ version: 2, uplinkSlots: bad }), "f"),
      /uplinkSlots|bad slot/,
      JSON.stringify(bad),
    );
});
