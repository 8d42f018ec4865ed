// What planning and the cross-checks need of the schema, without the schema: schema.ts builds
// every zod schema when it loads (~20–30 ms in a fresh process), which `plan` and `apply` of a
// config read from the validated-config cache (src/config/cached.ts) never use. schema.ts takes
// its limits and defaults from here, so the two cannot drift.

/** Counts: large enough for any real network, small enough that nothing renders without bound. */
export const LIMITS = {
  uplinks: 100,
  targets: 16,
  rules: 1000,
  prefixes: 10_000,
  ports: 1000,
  interfaces: 256,
  services: 10_000,
  backends: 1024,
  etcd: 16,
  argv: 64,
  domains: 1000,
  dnsListen: 16,
  dnsUpstreams: 8,
} as const;

/** An uplink's passive health settings (schema.ts's UplinkPassiveConfig is the same shape). */
export interface UplinkPassiveConfig {
  suspect_after: number;
  min_silence: number;
  timeout: number;
  confirm_rounds: number;
}

/** A service check's passive settings (schema.ts's PassiveConfig is the same shape). */
export interface PassiveConfig {
  fall: number;
  window: number;
  timeout: number;
}

/** An uplink's `passive: true`: the defaults of uplinkPassiveSchema. */
export const UPLINK_PASSIVE_DEFAULTS: Readonly<UplinkPassiveConfig> = Object.freeze({
  suspect_after: 4,
  min_silence: 50,
  timeout: 3000,
  confirm_rounds: 3,
});

/** A service check's `passive: true`: the defaults of passiveSchema. */
export const PASSIVE_DEFAULTS: Readonly<PassiveConfig> = Object.freeze({
  fall: 5,
  window: 10,
  timeout: 1000,
});

/** An uplink's passive health settings; null when it is off. */
export function uplinkPassiveOf(u: { passive: boolean | UplinkPassiveConfig }): UplinkPassiveConfig | null {
  const p = u.passive;
  return p === false ? null : p === true ? { ...UPLINK_PASSIVE_DEFAULTS } : p;
}

/** A service's passive check settings; null when it has none. */
export function passiveOf(check: { passive: boolean | PassiveConfig }): PassiveConfig | null {
  const p = check.passive;
  return p === false ? null : p === true ? { ...PASSIVE_DEFAULTS } : p;
}
