import type { BaseChainSpec, Element, NftChain, NftCounter, NftSet } from "./model.ts";

/** Short constructors for model objects, so builders read like the nft they stand for. */

type SetOpts = Partial<Pick<NftSet, "flags" | "timeout" | "size" | "autoMerge" | "counter" | "owner">>;

export function set(name: string, typeofExpr: string, keys: readonly string[], o: SetOpts = {}): NftSet {
  return { kind: "set", name, typeof: typeofExpr, ...o, elements: keys.map((key) => ({ key })) };
}

/** A set declared by data type (`type ipv4_addr . inet_proto`) rather than by expression. */
export function typedSet(name: string, type: string, keys: readonly string[], o: SetOpts = {}): NftSet {
  return { kind: "set", name, type, ...o, elements: keys.map((key) => ({ key })) };
}

export function map(name: string, typeofExpr: string, elements: readonly Element[], o: SetOpts = {}): NftSet {
  return { kind: "map", name, typeof: typeofExpr, ...o, elements };
}

export function typedMap(name: string, type: string, elements: readonly Element[], o: SetOpts = {}): NftSet {
  return { kind: "map", name, type, ...o, elements };
}

export function chain(name: string, rules: readonly string[], base?: BaseChainSpec): NftChain {
  return base ? { kind: "chain", name, base, rules } : { kind: "chain", name, rules };
}

export function counter(name: string): NftCounter {
  return { kind: "counter", name };
}

/** Elements of a verdict map from "KEY : VALUE" pairs. */
export const kv = (key: string, value: string): Element => ({ key, value });
