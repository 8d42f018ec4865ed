/**
 * A typed model of what nflb owns in nftables: tables, chains (rules as nft text, in order),
 * sets and maps with their elements, named counters. Planning builds one (src/plan/nft-*.ts);
 * serialize.ts turns it into a full script, diff.ts turns two of them into the smallest
 * transaction. Rules stay text, as knftables keeps them: nft parses them, and a rule changes as a
 * whole (its chain is flushed and refilled).
 */

export type Family = "inet" | "ip" | "ip6" | "arp" | "bridge" | "netdev";

/** One element: `key`, `key : value`, `key timeout 5000ms : value`. All nft text. */
export interface Element {
  key: string;
  value?: string;
  /** A relative lifetime (`5000ms`, `30m`) set when the element is written. */
  timeout?: string;
}

export interface NftSet {
  kind: "set" | "map";
  name: string;
  /** Declared with `typeof EXPR` … */
  typeof?: string;
  /** … or with `type T` (exactly one of the two). */
  type?: string;
  flags?: readonly string[];
  /** Default timeout of the set's elements (`timeout 30m`). */
  timeout?: string;
  size?: number;
  autoMerge?: boolean;
  /** `counter`: every element carries a packet and byte counter, bumped by each lookup that finds it. */
  counter?: boolean;
  /**
   * Where the elements come from:
   * - "model" (default): `elements` is the whole truth; the diff adds and deletes to match it.
   * - "packet": the packet path adds them (`update @set`): never part of desired state, never flushed.
   * - "external": another writer in the daemon owns them (the cluster agent's buckets): the diff
   *   leaves them alone; a full replace carries whatever `elements` holds at that moment.
   */
  owner?: "model" | "packet" | "external";
  elements: readonly Element[];
}

export interface NftCounter {
  kind: "counter";
  name: string;
}

export interface BaseChainSpec {
  type: "filter" | "nat" | "route";
  hook: string;
  /** A number or a name nft knows in that hook, possibly with an offset: `mangle - 5`, `-100`. */
  priority: string;
  policy?: "accept" | "drop";
}

export interface NftChain {
  kind: "chain";
  name: string;
  base?: BaseChainSpec;
  /** nft rule text, in order (no `add rule … CHAIN` prefix). */
  rules: readonly string[];
  /**
   * A map whose elements this chain's rules walk with state of their own (`numgen inc`): when the
   * map's elements change, the chain is rewritten too, which restarts the walk at slot 0.
   */
  restartWith?: string;
}

export type NftObject = NftSet | NftCounter | NftChain;

export interface NftTable {
  family: Family;
  name: string;
  comment?: string;
  /** In declaration order: the serializer writes them so (nft resolves references inside a block). */
  objects: readonly NftObject[];
}

/** Every table nflb owns: those it wants, and those that must not exist (left by an earlier config). */
export interface Ruleset {
  tables: readonly NftTable[];
  absent: readonly { family: Family; name: string }[];
}

export const tableRef = (t: { family: Family; name: string }) => `${t.family} ${t.name}`;

/** nft's namespaces inside a table: sets and maps share one, chains and counters have their own. */
export function objectKey(o: NftObject): string {
  return `${o.kind === "map" ? "set" : o.kind} ${o.name}`;
}

type ObjectOfKind<K extends NftObject["kind"]> = K extends "set" | "map"
  ? NftSet
  : K extends "chain"
    ? NftChain
    : NftCounter;

export function findObject<K extends NftObject["kind"]>(
  t: NftTable,
  kind: K,
  name: string,
): ObjectOfKind<K> | undefined {
  return t.objects.find((o) => o.kind === kind && o.name === name) as ObjectOfKind<K> | undefined;
}

/**
 * A set's elements as the concatenation of parts (a group map's members, src/plan/nft-groups.ts),
 * known for the very set object the builder made: a copy (`{ ...set, elements }`) has none. The
 * diff compares only the parts that are not the same arrays as the old set's.
 */
const segments = new WeakMap<NftSet, readonly (readonly Element[])[]>();

/** `set`, whose `elements` are exactly `parts` concatenated in order. */
export function withSegments(set: NftSet, parts: readonly (readonly Element[])[]): NftSet {
  segments.set(set, parts);
  return set;
}

export function segmentsOf(set: NftSet): readonly (readonly Element[])[] | undefined {
  return segments.get(set);
}

/** A copy of `r` whose set or map `name` in table `table` holds `elements` (for external writers). */
export function withElements(r: Ruleset, table: string, name: string, elements: readonly Element[]): Ruleset {
  return {
    ...r,
    tables: r.tables.map((t) =>
      t.name !== table && tableRef(t) !== table
        ? t
        : {
            ...t,
            objects: t.objects.map((o) =>
              (o.kind === "set" || o.kind === "map") && o.name === name ? { ...o, elements } : o,
            ),
          },
    ),
  };
}
