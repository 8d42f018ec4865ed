import {
  tableRef,
  type Element,
  type NftChain,
  type NftObject,
  type NftSet,
  type NftTable,
  type Ruleset,
} from "./model.ts";

/**
 * Model → nft text. The full script replaces every table nflb owns in one `nft -f` transaction
 * (`add table; delete table; table {…}` works whether or not the table exists). Lines are pushed
 * one at a time: a 15,000-endpoint table must not go through a spread on the call stack.
 */
export function serialize(r: Ruleset): string {
  const out: string[] = [];
  for (const t of r.tables) tableReplace(t, out);
  for (const t of r.absent) out.push(`add table ${tableRef(t)}`, `delete table ${tableRef(t)}`);
  return out.join("\n") + "\n";
}

/** `add table; delete table; table {…}`: replaces `t` whether or not it exists. */
export function tableReplace(t: NftTable, out: string[]): void {
  const ref = tableRef(t);
  out.push(`add table ${ref}`, `delete table ${ref}`);
  tableBlock(t, t.objects, out);
}

/** `table REF { … }`: declares (adds) `objects`; nft resolves references anywhere in the block. */
export function tableBlock(t: NftTable, objects: readonly NftObject[], out: string[]): void {
  out.push(`table ${tableRef(t)} {`);
  if (t.comment) out.push(`\tcomment ${JSON.stringify(t.comment)}`);
  for (const o of objects) objectLines(o, out);
  out.push("}");
}

export function objectLines(o: NftObject, out: string[]): void {
  if (o.kind === "counter") out.push(`\tcounter ${o.name} {`, "\t}");
  else if (o.kind === "chain") chainLines(o, out);
  else setLines(o, out);
}

function chainLines(c: NftChain, out: string[]): void {
  out.push(`\tchain ${c.name} {`);
  if (c.base) out.push(`\t\t${baseSpec(c)}`);
  for (const r of c.rules) out.push(`\t\t${r}`);
  out.push("\t}");
}

export function baseSpec(c: NftChain): string {
  const b = c.base;
  if (!b) return "";
  return `type ${b.type} hook ${b.hook} priority ${b.priority};${b.policy ? ` policy ${b.policy};` : ""}`;
}

function setLines(s: NftSet, out: string[]): void {
  out.push(`\t${s.kind} ${s.name} {`);
  for (const d of setDeclaration(s)) out.push(`\t\t${d}`);
  if (s.elements.length) out.push(`\t\telements = { ${elementList(s.elements)} }`);
  out.push("\t}");
}

/** Everything that fixes a set's shape; two sets with the same declaration can swap elements in place. */
export function setDeclaration(s: NftSet): string[] {
  const out = [s.typeof !== undefined ? `typeof ${s.typeof}` : `type ${s.type ?? ""}`];
  if (s.flags?.length) out.push(`flags ${s.flags.join(",")}`);
  if (s.timeout !== undefined) out.push(`timeout ${s.timeout}`);
  if (s.size !== undefined) out.push(`size ${s.size}`);
  if (s.autoMerge) out.push("auto-merge");
  if (s.counter) out.push("counter");
  return out;
}

export function elementText(e: Element): string {
  const t = e.timeout !== undefined ? ` timeout ${e.timeout}` : "";
  return e.value !== undefined ? `${e.key}${t} : ${e.value}` : `${e.key}${t}`;
}

export function elementList(elements: readonly Element[]): string {
  return elements.map(elementText).join(", ");
}

/** Objects as they appear inside a table block (for reading and tests). */
export function objectsText(objects: readonly NftObject[]): string {
  const out: string[] = [];
  for (const o of objects) objectLines(o, out);
  return out.join("\n");
}
