// Status of services beyond backend states: backup roles, persistence and check details, in the
// JSON (what the API returns) and in `nflb status`'s table.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/load.ts";
import { planServices } from "../../src/plan/services.ts";
import { backendExtras, serviceExtras } from "../../src/daemon/status-service.ts";
import { formatStatus } from "../../src/daemon/status-table.ts";
import type { StatusJson } from "../../src/daemon/status.ts";

const c = parseConfig(`version: 1
services:
  web:
    listen: 203.0.113.10:443
    scheduler: least-conn
    persistence: 10m
    check: { method: https, path: /healthz, sni: www.example.com, host: www.example.com, expect_body: "ok", interval: 2s }
    backends:
      - { address: 198.51.100.11:443 }
      - { address: 198.51.100.12:443 }
      - { address: 198.51.100.99:443, backup: true }
`);
const svc = c.services?.web ?? assert.fail();

test("backups hold the slots only while no regular backend is up, and status says which serve", () => {
  const plan = (h: Record<string, { up: boolean; weight?: number }>) =>
    planServices(c, { web: h })?.services[0] ?? assert.fail();
  const normal = plan({});
  assert.deepEqual(new Set(normal.slots), new Set(["198.51.100.11:443", "198.51.100.12:443"]));
  assert.equal(normal.onBackups, false);
  assert.deepEqual(
    svc.backends.map((b, i) => backendExtras(b, i, normal)),
    [
      { backup: false, serving: true },
      { backup: false, serving: true },
      { backup: true, serving: false },
    ],
  );
  // One regular left (even drained ones count as not up): still no backup.
  assert.deepEqual(
    new Set(plan({ "198.51.100.11:443": { up: false } }).slots),
    new Set(["198.51.100.12:443"]),
  );
  const down = plan({ "198.51.100.11:443": { up: false }, "198.51.100.12:443": { up: true, weight: 0 } });
  assert.deepEqual(new Set(down.slots), new Set(["198.51.100.99:443"]));
  assert.equal(serviceExtras(svc, down).on_backups, true);
  assert.deepEqual(backendExtras(svc.backends[2] ?? assert.fail(), 2, down), { backup: true, serving: true });
  // Every backup down too: nothing serves; the service drops new connections.
  assert.deepEqual(
    plan({
      "198.51.100.11:443": { up: false },
      "198.51.100.12:443": { up: false },
      "198.51.100.99:443": { up: false },
    }).slots,
    [],
  );
});

test("status JSON: scheduler, persistence and the check as configured", () => {
  assert.deepEqual(serviceExtras(svc, undefined), {
    scheduler: "least-conn",
    persistence: "10m",
    on_backups: false,
    check: {
      method: "https",
      interval_ms: 2000,
      timeout_ms: 500,
      rise: 2,
      fall: 3,
      port: null,
      path: "/healthz",
      expect_status: null,
      host: "www.example.com",
      expect_body: "ok",
      sni: "www.example.com",
    },
  });
});

test("nflb status: the service line, its check, and a ROLE column when it has backups", () => {
  const down = planServices(c, {
    web: { "198.51.100.11:443": { up: false }, "198.51.100.12:443": { up: false } },
  })?.services[0];
  const s: StatusJson = {
    uplinks: [],
    services: [
      {
        name: "web",
        listen: svc.listen,
        protocol: "tcp",
        ...serviceExtras(svc, down),
        backends: svc.backends.map((b, i) => ({
          address: b.address,
          state: i < 2 ? "down" : "up",
          weight: 1,
          connections: 0,
          connections_total: 0,
          bytes_to_backend: 0,
          bytes_from_backend: 0,
          reason: "",
          since: null,
          ...backendExtras(b, i, down),
        })),
      },
    ],
    cluster: null,
    applied_at: null,
    config_version: "x",
    config_file: "/etc/nflb/nflb.yaml",
    started_at: new Date(0).toISOString(),
    last_reload_error: null,
    keeping_last_data_plane: false,
  };
  const text = formatStatus(s, false);
  assert.match(text, /^service web \(tcp 203\.0\.113\.10:443\) least-conn, persistence 10m$/m);
  assert.match(
    text,
    /^ {2}check: https GET \/healthz every 2s, timeout 500ms, rise 2 fall 3, sni www\.example\.com, host www\.example\.com, body "ok"$/m,
  );
  assert.match(text, /ROLE/);
  assert.match(text, /198\.51\.100\.99:443 +up .* backup \(serving\)/);
  assert.match(text, /198\.51\.100\.11:443 +down .* regular/);
  assert.match(text, /the backups take new connections/);
});
