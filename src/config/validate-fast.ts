import { parseHostPort, splitPrefixes } from "../net/ip.ts";
import { explainIssue } from "./messages.ts";
import { configSchema, LIMITS, type BackendConfig, type Config } from "./schema.ts";

// zod spends ~1 µs per value it checks and more per object it builds: 5,000 services × 50
// backends cost it 0.4 s, a 10,000-prefix list a few ms. The long lists of a config (backends,
// prefixes) are checked here in one loop each, by the same rules as their schemas, and zod checks
// the rest of the config with each list cut to what it needs to see. Only for a valid config:
// anything these loops do not accept plainly (a wrong value, an unknown key, too many items)
// returns undefined, and the caller validates the whole config with zod, which words the errors.

/** Lists shorter than this are left to zod. */
const MIN_LIST = 32;

type Raw = Record<string, unknown>;
const isMapping = (v: unknown): v is Raw => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * The validated config (what `configSchema.parse(raw)` returns), or undefined when it is not
 * plainly valid. Modifies `raw`, and the config takes its long lists (not copies).
 */
export function validateFast(raw: unknown): Config | undefined {
  if (!isMapping(raw)) return undefined;
  const put: ((c: Config) => void)[] = [];

  if (isMapping(raw.services)) {
    for (const [name, s] of Object.entries(raw.services)) {
      if (!isMapping(s) || !Array.isArray(s.backends) || s.backends.length < MIN_LIST) continue;
      const backends = checkBackends(s.backends);
      if (!backends) return undefined;
      // zod still sees one backend: the list's own bounds are checked above.
      s.backends = s.backends.slice(0, 1);
      put.push((c) => {
        (c.services?.[name] as { backends: BackendConfig[] }).backends = backends;
      });
    }
  }

  const prefixList = (owner: unknown, key: string, into: (c: Config) => Raw): boolean => {
    if (!isMapping(owner)) return true;
    const list = owner[key];
    if (!Array.isArray(list) || list.length < MIN_LIST) return true;
    const copy = checkPrefixes(list);
    if (!copy) return false;
    owner[key] = [];
    put.push((c) => {
      into(c)[key] = copy;
    });
    return true;
  };
  if (!prefixList(raw.balance, "sources", (c) => c.balance)) return undefined;
  if (Array.isArray(raw.rules)) {
    const rules = raw.rules as unknown[];
    for (let i = 0; i < rules.length; i++) {
      const rule = (c: Config) => c.rules[i] as unknown as Raw;
      if (!prefixList(rules[i], "destination", rule) || !prefixList(rules[i], "source", rule))
        return undefined;
    }
  }

  const parsed = configSchema.safeParse(raw, { error: explainIssue, reportInput: true });
  if (!parsed.success) return undefined;
  for (const f of put) f(parsed.data);
  return parsed.data;
}

const BACKEND_KEYS = new Set(["address", "weight", "backup"]);

/** backendSchema's output for each item, or undefined when an item is not plainly valid. */
function checkBackends(list: unknown[]): BackendConfig[] | undefined {
  if (list.length > LIMITS.backends) return undefined;
  const out: BackendConfig[] = new Array<BackendConfig>(list.length);
  for (let i = 0; i < list.length; i++) {
    const b = list[i];
    if (!isMapping(b)) return undefined;
    for (const k in b) if (!BACKEND_KEYS.has(k)) return undefined;
    const { address, weight, backup } = b;
    if (typeof address !== "string" || "error" in parseHostPort(address)) return undefined;
    if (
      weight !== undefined &&
      !(Number.isSafeInteger(weight) && (weight as number) >= 0 && (weight as number) <= 10_000)
    )
      return undefined;
    if (backup !== undefined && typeof backup !== "boolean") return undefined;
    const be: BackendConfig = { address, weight: (weight as number | undefined) ?? 1 };
    if (backup !== undefined) be.backup = backup;
    out[i] = be;
  }
  return out;
}

/**
 * A valid prefix list itself (what its schema returns, the same items), or undefined. Not a copy:
 * splitPrefixes remembers its work by list, and the planner asks it again for the config's list.
 */
function checkPrefixes(list: unknown[]): string[] | undefined {
  if (list.length > LIMITS.prefixes) return undefined;
  for (const p of list) if (typeof p !== "string") return undefined;
  if (splitPrefixes(list as string[]).errors.length > 0) return undefined;
  return list as string[];
}
