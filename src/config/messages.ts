import * as z from "zod";
import { didYouMean } from "./suggest.ts";

// zod's own messages ("Invalid input", "Too small: expected number to be >=0") say what is wrong
// in zod's terms. These say it in the config's terms and how to fix it. A message a schema gives
// itself (durations, names, addresses) wins over these: zod asks this map only when it has none.

type RawIssue = z.core.$ZodRawIssue & {
  input?: unknown;
  schema?: { minValue?: number | null; maxValue?: number | null; isInt?: boolean; _zod?: unknown };
};

/** A value as the admin wrote it, for "(got …)". */
export function describeInput(v: unknown): string {
  if (v === undefined || v === null) return "nothing";
  if (typeof v === "string") return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (Array.isArray(v)) return `a list of ${v.length}`;
  return "a mapping";
}

/** The per-parse error map: a message for every issue a schema does not word itself. */
export function explainIssue(iss: RawIssue): string | undefined {
  const got = describeInput(iss.input);
  switch (iss.code) {
    case "invalid_type": {
      if (iss.input === undefined) {
        const key = lastKey(iss.path);
        const what = iss.inst ? z.globalRegistry.get(iss.inst as z.ZodType)?.description : undefined;
        if (key) return `missing: add ${key}:${what ? ` (${what})` : ""}`;
      }
      return invalidType(iss.expected, iss.input, lastKey(iss.path));
    }
    case "too_small":
    case "too_big":
      return outOfRange(iss);
    case "invalid_value": {
      const values = iss.values.map((v) => String(v));
      if (values.length === 1) return `must be ${values[0]} (got ${got})`;
      const guess = typeof iss.input === "string" ? didYouMean(iss.input, values) : undefined;
      return `expected one of ${values.join(", ")} (got ${got})${guess ? `: did you mean ${guess}?` : ""}`;
    }
    case "invalid_format":
      if (iss.format === "url") return `not a URL (got ${got}): write it like http://192.0.2.10:2379`;
      if (iss.format === "starts_with") return `must start with ${String(iss.prefix)} (got ${got})`;
      return `expected ${iss.format} (got ${got})`;
    case "invalid_key":
      // A record's key (an uplink or service name): the key schema's own message says what a name is.
      return iss.issues[0]?.message ?? `not a valid name: ${got}`;
    case "invalid_union":
      return `not a valid value here (got ${got})`;
    case "not_multiple_of":
      return `must be a multiple of ${String(iss.divisor)} (got ${got})`;
    case "unrecognized_keys":
      return `unknown key${iss.keys.length > 1 ? "s" : ""} ${iss.keys.join(", ")}`;
    default:
      return undefined;
  }
}

function lastKey(path: PropertyKey[] | undefined): string | undefined {
  const k = path?.[path.length - 1];
  return typeof k === "string" ? k : undefined;
}

function invalidType(expected: string, input: unknown, key: string | undefined): string {
  const got = describeInput(input);
  if (input === undefined) return key ? `missing: add ${key}:` : `missing ${expected}`;
  switch (expected) {
    case "int":
    case "number":
      if (expected === "int" && typeof input === "number") return `expected a whole number (got ${got})`;
      return `expected a number (got ${got})${typeof input === "string" && /^\s*-?\d+(\.\d+)?\s*$/.test(input) ? `: write it without quotes` : ""}`;
    case "boolean":
      return `expected true or false (got ${got})${typeof input === "string" && /^(yes|no|on|off|y|n)$/i.test(input) ? `: YAML 1.2 reads ${input} as text; write ${/^(yes|on|y)$/i.test(input) ? "true" : "false"}` : ""}`;
    case "array":
      return `expected a list, like [a, b] (got ${got})${typeof input === "string" || typeof input === "number" ? `: write [${String(input)}]` : ""}`;
    case "object":
    case "record":
      return input === null
        ? "is empty: give it its keys (see docs/CONFIG.md), or remove it"
        : `expected a mapping of keys to values (got ${got})`;
    case "string":
      return `expected text (got ${got})`;
    default:
      return `expected ${expected} (got ${got})`;
  }
}

function outOfRange(iss: RawIssue & { code: "too_small" | "too_big" }): string {
  const got = describeInput(iss.input);
  const bound = iss.code === "too_small" ? iss.minimum : iss.maximum;
  if (iss.origin === "number" || iss.origin === "int" || iss.origin === "bigint") {
    const lo = iss.schema?.minValue;
    const hi = iss.schema?.maxValue;
    const whole = iss.schema?.isInt ? "a whole number " : "";
    if (typeof lo === "number" && typeof hi === "number" && Number.isFinite(lo) && Number.isFinite(hi))
      return `must be ${whole}from ${fmt(lo)} to ${fmt(hi)} (got ${got})`;
    return `must be ${iss.code === "too_small" ? "at least" : "at most"} ${fmt(Number(bound))} (got ${got})`;
  }
  if (iss.origin === "array" || iss.origin === "set") {
    const n = Array.isArray(iss.input) ? iss.input.length : "?";
    return iss.code === "too_small"
      ? `needs at least ${String(bound)} item${bound === 1 ? "" : "s"} (has ${n})`
      : `at most ${String(bound)} items (has ${n})`;
  }
  if (iss.origin === "string") {
    if (iss.code === "too_small" && bound === 1) return "must not be empty";
    return `must be ${iss.code === "too_small" ? "at least" : "at most"} ${String(bound)} characters long`;
  }
  return `out of range (got ${got})`;
}

/** Large bounds read better in hex where the config uses hex (marks, tables). */
function fmt(n: number): string {
  return n >= 0xfffff000 ? `0x${n.toString(16)}` : String(n);
}
