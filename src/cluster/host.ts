import { applyDesired } from "../apply/dataplane.ts";
import type { Config } from "../config/schema.ts";
import { parseAddr } from "../net/ip.ts";
import { allHealthy, desiredState } from "../plan/desired.ts";
import type { Facts } from "../plan/types.ts";
import { run } from "../system/exec.ts";
import { ipRaw, readInterfaces } from "../system/iproute.ts";
import { nftApply } from "../system/nft.ts";
import { loadState, saveState } from "../system/state.ts";
import { readSlotFacts } from "../apply/uplink-slots.ts";
import { withElements } from "../nft/model.ts";
import { OWNED_SET, TABLE_REF } from "../nft/names.ts";
import { serialize } from "../nft/serialize.ts";
import { ownedElements, planCluster, renderOwnedUpdate, type OwnedElements } from "./render.ts";

/** What the agent needs from the machine it runs on; the daemon may supply its own. */
export interface ClusterHost {
  /** Install (or re-install, after a config change) the node's data plane, keeping `owned` accepted. */
  setup(config: Config, owned: OwnedElements | null): Promise<void>;
  /** Replace the accepted buckets atomically; each lapses by itself after its timeout. */
  setOwned(owned: OwnedElements): Promise<void>;
  facts(): Promise<Facts>;
}

/** The node's own address on the cluster interface (not a VIP): where peers reach it. */
export function nodeAddress(facts: Facts, iface: string, vips: readonly string[]): string | null {
  const addrs = facts.interfaces.get(iface)?.addresses ?? [];
  const own = addrs.filter((a) => !vips.some((v) => parseAddr(v)?.text === a.text));
  return (own.find((a) => a.family === 4) ?? own[0])?.text ?? null;
}

/** The standalone host: nft, ip and sysctls through src/system. */
export class KernelHost implements ClusterHost {
  async facts(): Promise<Facts> {
    return { interfaces: await readInterfaces() };
  }

  async setup(config: Config, owned: OwnedElements | null): Promise<void> {
    const cl = config.cluster;
    if (!cl) throw new Error("cluster host: config has no cluster section");
    const facts = await this.facts();
    const plan = planCluster(cl);
    // Uplinks keep the slots the state file records (src/plan/uplink-ids.ts).
    const slots = await readSlotFacts(config).catch(() => ({}));
    const want = desiredState(config, allHealthy(config), { ...facts, ...slots });
    // The filter goes in first: once the VIP is up, only owned buckets are answered.
    const model = owned ? withElements(want.model, TABLE_REF, OWNED_SET, ownedElements(owned)) : want.model;
    await applyDesired(want, { nftScript: serialize(model) });
    await this.ensureAddresses(cl.interface, cl.vip, facts);
    for (const mac of [plan.mac4, plan.mac6]) if (mac) await this.ensureMaddr(cl.interface, mac);
  }

  async setOwned(owned: OwnedElements): Promise<void> {
    await nftApply(renderOwnedUpdate(owned));
  }

  /** Add missing VIPs (recorded, so `down` removes them); adopt ones already there (not recorded). */
  protected async ensureAddresses(iface: string, vips: readonly string[], facts: Facts): Promise<void> {
    const state = await loadState();
    const have = new Set((facts.interfaces.get(iface)?.addresses ?? []).map((a) => a.text));
    const want = vips.map((v) => parseAddr(v)).filter((a) => a !== null);
    const wantCidr = new Set(want.map((a) => `${a.text}/${a.family === 4 ? 32 : 128}`));
    // A VIP this node added for an earlier config and no longer wants.
    for (const a of state.addresses.filter((x) => x.iface === iface && !wantCidr.has(x.cidr))) {
      await ipRaw(a.cidr.includes(":") ? 6 : 4, ["addr", "del", a.cidr, "dev", iface]).catch(() => undefined);
      state.addresses = state.addresses.filter((x) => x !== a);
    }
    for (const a of want) {
      if (have.has(a.text)) continue;
      const cidr = `${a.text}/${a.family === 4 ? 32 : 128}`;
      if (!state.addresses.some((x) => x.iface === iface && x.cidr === cidr))
        state.addresses.push({ iface, cidr });
      await saveState(state);
      await ipRaw(a.family, ["addr", "add", cidr, "dev", iface, ...(a.family === 6 ? ["nodad"] : [])]);
    }
    await saveState(state);
  }

  protected async ensureMaddr(iface: string, mac: string): Promise<void> {
    const out = await run(["ip", "-j", "maddr", "show", "dev", iface]);
    const parsed = JSON.parse(out || "[]") as { maddr?: { link?: string; features?: string }[] }[];
    if (parsed.some((l) => (l.maddr ?? []).some((m) => m.link === mac && m.features === "static"))) return;
    const state = await loadState();
    state.maddrs = [
      ...(state.maddrs ?? []).filter((m) => !(m.iface === iface && m.mac === mac)),
      { iface, mac },
    ];
    await saveState(state);
    await ipRaw(4, ["maddr", "add", mac, "dev", iface]);
  }
}
