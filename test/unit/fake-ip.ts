// An in-memory `ip` for unit tests of policy routing: it reads back what it holds the way
// `ip -N -j` does and runs `ip -batch` text line by line with the kernel's rules that matter
// here: a duplicate rule add fails ("File exists"), deleting what is not there fails, a delete
// matches only the attributes it names (protocol included), and a batch without -force stops at
// the first failing line with the lines before it applied.
import type { Fam, RouteSpec } from "../../src/plan/routing.ts";
import { IpBatchError, type IpPort, type KernelRoute, type KernelRule } from "../../src/system/iproute.ts";

export class FakeIp implements IpPort {
  rules: KernelRule[] = [];
  routes: KernelRoute[] = [];
  /** Every batch as sent, for assertions on the exact text. */
  batches: { fam: Fam; text: string; force: boolean }[] = [];
  /** Lines matching this fail as the kernel would refuse them (a gateway not on link…). */
  failOn: RegExp | null = null;
  reads = 0;

  async read(fam: Fam) {
    this.reads++;
    return {
      rules: this.rules.filter((r) => r.family === fam).map((r) => ({ ...r })),
      routes: this.routes.filter((r) => r.family === fam).map((r) => ({ ...r })),
    };
  }

  async batch(fam: Fam, text: string, opts: { force?: boolean } = {}) {
    this.batches.push({ fam, text, force: opts.force === true });
    const lines = text.split("\n").filter(Boolean);
    let firstError: IpBatchError | null = null;
    for (const [i, line] of lines.entries()) {
      const err = this.failOn?.test(line) ? "Error: refused by the test" : this.line(fam, line);
      if (err === null) continue;
      firstError ??= new IpBatchError(
        fam,
        opts.force ? null : i,
        line,
        `${err}\nCommand failed -:${i + 1}\n`,
      );
      if (!opts.force) break;
    }
    if (firstError) throw firstError;
  }

  /** Foreign objects (another tool's), as a test's starting state. */
  addForeignRule(r: Omit<KernelRule, "proto"> & { proto?: number }) {
    this.rules.push({ proto: 0, ...r });
  }
  addForeignRoute(fam: Fam, table: number, dst: string) {
    this.routes.push({ family: fam, table, dst, type: "unicast", proto: 0, spec: null });
  }

  /** Returns an error message, or null when the line went in. */
  private line(fam: Fam, line: string): string | null {
    const w = line.split(" ");
    const opt = (k: string) => {
      const i = w.indexOf(k);
      return i < 0 ? undefined : w[i + 1];
    };
    if (w[0] === "rule") {
      const spec: KernelRule = {
        family: fam,
        priority: Number(opt("priority")),
        table: w.includes("unreachable") ? "unreachable" : parseTable(opt("lookup")),
        proto: Number(opt("protocol") ?? 0),
      };
      const from = opt("from");
      if (from) spec.from = from;
      const mark = opt("fwmark");
      if (mark) {
        const [v, m] = mark.split("/");
        spec.fwmark = { value: Number(v), mask: Number(m) };
      }
      const sp = opt("suppress_prefixlength");
      if (sp !== undefined) spec.suppressPrefixlength = Number(sp);
      if (w[1] === "add") {
        if (this.rules.some((r) => sameRule(r, spec))) return "RTNETLINK answers: File exists";
        this.rules.push(spec);
        return null;
      }
      // A delete names some attributes; the first rule matching all of them goes.
      const i = this.rules.findIndex(
        (r) =>
          r.family === fam &&
          r.priority === spec.priority &&
          (opt("protocol") === undefined || r.proto === spec.proto) &&
          (opt("lookup") === undefined || r.table === spec.table) &&
          (from === undefined || r.from === from),
      );
      if (i < 0) return "RTNETLINK answers: No such file or directory";
      this.rules.splice(i, 1);
      return null;
    }
    if (w[0] === "route") {
      const table = Number(opt("table") ?? 254);
      const proto = Number(opt("proto") ?? 0);
      const dst = (ROUTE_TYPES.has(w[2] ?? "") ? w[3] : w[2]) ?? "";
      const at = this.routes.findIndex((r) => r.family === fam && r.table === table && r.dst === dst);
      if (w[1] === "replace") {
        const spec: RouteSpec = { family: fam, table, nexthops: [] };
        if (w.includes("nexthop")) {
          for (let i = w.indexOf("nexthop"); i >= 0 && i < w.length; i = w.indexOf("nexthop", i + 1)) {
            const seg = w.slice(i + 1, nextIndex(w, "nexthop", i + 1));
            const g = (k: string) => seg[seg.indexOf(k) + 1];
            spec.nexthops.push({
              ...(seg.includes("via") ? { via: g("via") as string } : {}),
              dev: g("dev") as string,
              weight: Number(g("weight") ?? 1),
            });
          }
        } else {
          const via = opt("via");
          spec.nexthops.push({ ...(via ? { via } : {}), dev: opt("dev") ?? "" });
        }
        const route: KernelRoute = { family: fam, table, dst, type: "unicast", proto, spec };
        if (at >= 0) this.routes[at] = route;
        else this.routes.push(route);
        return null;
      }
      if (at < 0 || (opt("proto") !== undefined && this.routes[at]?.proto !== proto))
        return "RTNETLINK answers: No such process";
      this.routes.splice(at, 1);
      return null;
    }
    return `Object "${w[0]}" is unknown`;
  }
}

const ROUTE_TYPES = new Set([
  "local",
  "broadcast",
  "unreachable",
  "blackhole",
  "prohibit",
  "multicast",
  "throw",
]);

function parseTable(t: string | undefined): number | "main" {
  return t === "main" ? "main" : Number(t);
}

function nextIndex(w: string[], k: string, from: number): number {
  const i = w.indexOf(k, from);
  return i < 0 ? w.length : i;
}

function sameRule(a: KernelRule, b: KernelRule): boolean {
  return (
    a.family === b.family &&
    a.priority === b.priority &&
    a.table === b.table &&
    a.from === b.from &&
    a.fwmark?.value === b.fwmark?.value &&
    a.fwmark?.mask === b.fwmark?.mask &&
    a.suppressPrefixlength === b.suppressPrefixlength &&
    a.proto === b.proto
  );
}
