// The nflb dashboard: plain JS and uPlot. Numbers come from polling /api/v1/status; state changes
// arrive at once through the event stream (/api/v1/events), which also triggers a poll. Charts
// hold what this page has seen (the last few minutes), not the daemon's history.
/* global setTimeout, clearTimeout, ResizeObserver */
"use strict";

(() => {
  const TOKEN_KEY = "nflb.token";
  const POLL_MS = 1000;
  const KEEP_S = 300;
  const RATE_WINDOW_S = 3;
  const MAX_EVENTS = 200;
  const COLORS = ["#2563eb", "#d97706", "#059669", "#7c3aed", "#db2777", "#0891b2", "#65a30d", "#dc2626"];

  const $ = (sel) => document.querySelector(sel);
  const CSRF = $('meta[name="nflb-csrf"]')?.getAttribute("content") || "";

  /** createElement with properties (text, className, dataset, attributes) and children. */
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === "text") e.textContent = v;
      else if (k === "className") e.className = v;
      else if (k === "dataset") Object.assign(e.dataset, v);
      else e.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  const pct = (x) =>
    x === null || x === undefined ? "–" : `${(x * 100).toFixed(x > 0 && x < 0.1 ? 1 : 0)} %`;
  const ms = (x) => (x === null || x === undefined ? "–" : `${x < 10 ? x.toFixed(2) : x.toFixed(0)} ms`);
  const num = (x) => (x === null || x === undefined ? "–" : x.toLocaleString());
  const clock = (iso) => {
    const d = iso ? new Date(iso) : new Date();
    return d.toLocaleTimeString([], { hour12: false });
  };
  const badgeClass = (state) =>
    ["up", "down", "disabled", "draining", "maint"].includes(state) ? state : "other";
  // drained or in maint (no new connections): the button puts it back.
  const heldBack = (state) => state === "draining" || state === "maint";

  // ---- toast, banner, live indicator ---------------------------------------------------------

  let toastTimer;
  function toast(text, error) {
    const t = $("#toast");
    t.textContent = text;
    t.className = error ? "error" : "";
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => (t.hidden = true), error ? 7000 : 3000);
  }

  function setLive(kind, text) {
    const p = $("#live");
    p.className = `pill ${kind}`;
    p.textContent = text;
  }

  function banner(lines) {
    const b = $("#banner");
    b.hidden = lines.length === 0;
    b.replaceChildren(...lines.map((l) => el("div", { text: l })));
  }

  // ---- actions (POST with the token from localStorage, asking for it on 401) ----------------

  async function act(path, button, what) {
    button.disabled = true;
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        const token = localStorage.getItem(TOKEN_KEY);
        // The daemon put a per-start secret in this page: it proves the POST comes from its own page.
        const headers = { "x-nflb-csrf": CSRF };
        if (token) headers.authorization = `Bearer ${token}`;
        const res = await fetch(path, { method: "POST", headers });
        if (res.status === 401) {
          const asked = window.prompt(
            token
              ? "The daemon refused that token. API token (api.token or NFLB_API_TOKEN):"
              : "This daemon needs its API token (api.token or NFLB_API_TOKEN):",
          );
          if (!asked || !asked.trim()) {
            toast(`${what}: cancelled, no token given`, true);
            return;
          }
          localStorage.setItem(TOKEN_KEY, asked.trim());
          continue;
        }
        const body = await res.json().catch(() => ({}));
        if (!res.ok) {
          toast(`${what}: ${body.error || `HTTP ${res.status}`}`, true);
          return;
        }
        toast(`${what}: done`);
        refresh();
        return;
      }
      toast(`${what}: the token was refused`, true);
    } catch (e) {
      toast(`${what}: ${e.message}`, true);
    } finally {
      button.disabled = false;
    }
  }

  // ---- history for the charts ------------------------------------------------------------------

  /** Samples of every uplink at the same instants: t (s), and per uplink rtt, loss %, conns, rate. */
  let hist = { key: "", t: [], up: new Map() };

  function record(s) {
    const key = s.uplinks.map((u) => u.name).join(",");
    if (key !== hist.key) hist = { key, t: [], up: new Map(s.uplinks.map((u) => [u.name, newSeries()])) };
    const now = Date.now() / 1000;
    const last = hist.t[hist.t.length - 1];
    if (last !== undefined && now - last < 0.25) return;
    hist.t.push(now);
    let from = hist.t.length - 1;
    while (from > 0 && now - hist.t[from] < RATE_WINDOW_S) from--;
    for (const u of s.uplinks) {
      const h = hist.up.get(u.name);
      h.rtt.push(u.rtt_ms);
      h.loss.push(u.loss === null || u.loss === undefined ? null : u.loss * 100);
      h.conns.push(u.connections);
      const then = h.conns[from];
      const dt = now - hist.t[from];
      const ok =
        dt > 0 && u.connections !== null && then !== null && then !== undefined && u.connections >= then;
      h.rate.push(ok ? (u.connections - then) / dt : null);
    }
    while (hist.t.length && now - hist.t[0] > KEEP_S) {
      hist.t.shift();
      for (const h of hist.up.values()) for (const a of Object.values(h)) a.shift();
    }
  }

  function newSeries() {
    return { rtt: [], loss: [], conns: [], rate: [] };
  }

  function latestRate(name) {
    const r = hist.up.get(name)?.rate;
    return r && r.length ? r[r.length - 1] : null;
  }

  // ---- charts ------------------------------------------------------------------------------------

  const pad2 = (n) => String(n).padStart(2, "0");
  /** Whole seconds only (uPlot would tick every 0.5 s on a short span), labelled mm:ss. */
  const TIME_AXIS = {
    size: 30,
    space: 50,
    incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600],
    values: (_u, vals) =>
      vals.map((v) => {
        const d = new Date(v * 1000);
        return `${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
      }),
  };

  /** A uPlot that follows its container's width. */
  function chart(container, opts, height) {
    const width = () => Math.max(200, container.clientWidth);
    const plot = new window.uPlot(
      { ...opts, width: width(), height },
      opts.series.map(() => []),
      container,
    );
    new ResizeObserver(() => plot.setSize({ width: width(), height })).observe(container);
    return plot;
  }

  function uplinkChart(container) {
    return chart(
      container,
      {
        cursor: { drag: { x: false, y: false } },
        scales: {
          x: { time: true },
          ms: { range: (_u, _min, max) => [0, Math.max(0.1, (max || 0) * 1.25)] },
          pct: { range: [0, 100] },
        },
        series: [
          {},
          {
            label: "RTT",
            scale: "ms",
            stroke: "#2563eb",
            width: 1.5,
            points: { show: false },
            value: (_u, v) => ms(v),
          },
          {
            label: "loss",
            scale: "pct",
            stroke: "#dc2626",
            fill: "rgba(220,38,38,0.12)",
            width: 1,
            points: { show: false },
            value: (_u, v) => (v === null ? "–" : `${v.toFixed(0)} %`),
          },
        ],
        axes: [
          TIME_AXIS,
          { scale: "ms", size: 64, values: (_u, vals) => vals.map((v) => `${+v.toPrecision(3)} ms`) },
          {
            scale: "pct",
            side: 1,
            size: 44,
            grid: { show: false },
            values: (_u, vals) => vals.map((v) => `${v}%`),
          },
        ],
      },
      140,
    );
  }

  let split = { key: "", plot: null };

  function drawSplit() {
    const names = [...hist.up.keys()];
    const box = $("#split");
    box.hidden = names.length === 0;
    if (!names.length) return;
    if (split.key !== hist.key) {
      const container = $("#split-chart");
      container.replaceChildren();
      split = {
        key: hist.key,
        plot: chart(
          container,
          {
            cursor: { drag: { x: false, y: false } },
            scales: {
              x: { time: true },
              y: { range: (_u, _min, max) => [0, Math.max(1, (max || 0) * 1.2)] },
            },
            series: [
              {},
              ...names.map((n, i) => ({
                label: n,
                stroke: COLORS[i % COLORS.length],
                width: 2,
                points: { show: false },
                value: (_u, v) => (v === null ? "–" : `${v.toFixed(1)}/s`),
              })),
            ],
            axes: [TIME_AXIS, { size: 44, values: (_u, vals) => vals.map((v) => `${v}/s`) }],
          },
          180,
        ),
      };
    }
    split.plot.setData([hist.t, ...names.map((n) => hist.up.get(n).rate)]);
  }

  // ---- uplinks -------------------------------------------------------------------------------------

  let uplinkViews = { key: "", views: new Map() };

  function stat(label) {
    const b = el("b", { text: "–" });
    return { box: el("div", null, b, el("span", { text: label })), b };
  }

  function uplinkView(u, color) {
    const v = { name: u.name, state: u.state };
    v.badge = el("span", { className: "badge uplink-state" });
    v.button = el("button", { type: "button", className: "toggle" });
    v.button.addEventListener("click", () => {
      const enable = v.state === "disabled";
      const path = `/api/v1/uplinks/${encodeURIComponent(v.name)}/${enable ? "enable" : "disable"}`;
      act(path, v.button, `${enable ? "enable" : "disable"} ${v.name}`);
    });
    v.reason = el("p", { className: "reason uplink-reason" });
    v.bar = el("div");
    v.bar.style.background = color;
    const stats = ["share", "weight", "RTT", "loss", "connections", "new conn/s"].map(stat);
    [v.share, v.weight, v.rtt, v.loss, v.conns, v.rate] = stats.map((s) => s.b);
    v.conns.className = "uplink-conns";
    v.rate.className = "uplink-rate";
    v.chartBox = el("div", { className: "chart" });
    v.card = el(
      "article",
      { className: "card", dataset: { uplink: u.name } },
      el(
        "div",
        { className: "card-head" },
        el("span", { className: "name", text: u.name }),
        el("span", { className: "muted", text: u.interface || "" }),
        v.badge,
        el("span", { className: "spacer" }),
        v.button,
      ),
      v.reason,
      el("div", { className: "share", title: "share of new connections" }, v.bar),
      el("div", { className: "stats" }, ...stats.map((s) => s.box)),
      v.chartBox,
    );
    return v;
  }

  /** " · load 8.1/0.4 of 10/10 Mbit/s, spilling · metered", or "" without a measured load. */
  function loadNote(u) {
    const m = (x) => (x === null || x === undefined ? "–" : String(Number((x / 1e6).toFixed(1))));
    let out = "";
    if (u.load) {
      out += ` · load ${m(u.load.down)}/${m(u.load.up)}`;
      if (u.capacity) out += ` of ${m(u.capacity.down)}/${m(u.capacity.up)}`;
      out += " Mbit/s";
      if (u.overflow) out += `, ${u.overflow}`;
    }
    return u.metered ? `${out} · metered` : out;
  }

  function renderUplinks(list) {
    const key = list.map((u) => u.name).join(",");
    const box = $("#uplinks");
    if (key !== uplinkViews.key) {
      box.replaceChildren();
      const views = new Map();
      list.forEach((u, i) => {
        const v = uplinkView(u, COLORS[i % COLORS.length]);
        box.append(v.card);
        v.plot = uplinkChart(v.chartBox);
        views.set(u.name, v);
      });
      uplinkViews = { key, views };
      if (!list.length) box.append(el("p", { className: "muted", text: "No uplinks configured." }));
    }
    for (const u of list) {
      const v = uplinkViews.views.get(u.name);
      v.state = u.state;
      v.card.className = `card state-${u.state}`;
      v.card.dataset.state = u.state;
      v.badge.className = `badge uplink-state ${badgeClass(u.state)}`;
      v.badge.textContent = u.state;
      v.reason.textContent = (u.reason || "") + (u.since ? ` · since ${clock(u.since)}` : "") + loadNote(u);
      v.bar.style.width = `${(u.share || 0) * 100}%`;
      v.share.textContent = pct(u.share);
      const eff = u.effective_weight;
      v.weight.textContent =
        eff !== undefined && eff !== u.weight ? `${u.weight} (now ${eff})` : String(u.weight);
      v.rtt.textContent = ms(u.rtt_ms);
      v.loss.textContent = pct(u.loss);
      v.conns.textContent = num(u.connections);
      const r = latestRate(u.name);
      v.rate.textContent = r === null ? "–" : r.toFixed(1);
      v.button.textContent = u.state === "disabled" ? "Enable" : "Disable";
      v.button.className = `toggle ${u.state === "disabled" ? "" : "danger"}`;
      const h = hist.up.get(u.name);
      if (h) v.plot.setData([hist.t, h.rtt, h.loss]);
    }
  }

  // ---- services ------------------------------------------------------------------------------------

  let serviceViews = { key: "", rows: new Map(), heads: new Map() };

  /** `https GET /health every 1s, sni www.example.com, host …, body "ok"`: what the check asks. */
  function checkText(c) {
    if (!c) return "";
    if (c.method === "none") return "check: none";
    const ms = (n) => (n % 1000 === 0 ? `${n / 1000}s` : `${n}ms`);
    const what = c.method === "tcp" ? "tcp connect" : `${c.method} GET ${c.path || "/"}`;
    const extra = [
      c.port ? `port ${c.port}` : "",
      c.sni ? `sni ${c.sni}` : "",
      c.host ? `host ${c.host}` : "",
      c.expect_status ? `status ${c.expect_status}` : "",
      c.expect_body ? `body "${c.expect_body}"` : "",
    ].filter(Boolean);
    return `check: ${what} every ${ms(c.interval_ms)}${extra.length ? `, ${extra.join(", ")}` : ""}`;
  }

  function modeText(s) {
    return [s.scheduler, s.persistence ? `persistence ${s.persistence}` : ""].filter(Boolean).join(" · ");
  }

  function renderServices(list) {
    const key = list.map((s) => `${s.name}:${s.backends.map((b) => b.address).join(",")}`).join(";");
    const box = $("#services");
    if (key !== serviceViews.key) {
      box.replaceChildren();
      const rows = new Map();
      const heads = new Map();
      for (const s of list) {
        const tbody = el("tbody");
        for (const b of s.backends) {
          const r = { service: s.name, address: b.address, state: b.state };
          r.badge = el("span", { className: "badge" });
          r.weight = el("td", { className: "num" });
          r.conns = el("td", { className: "num backend-conns" });
          r.reason = el("p", { className: "reason backend-reason" });
          r.role = el("span", { className: "role backend-role" });
          r.button = el("button", { type: "button" });
          r.button.addEventListener("click", () => {
            const drain = !heldBack(r.state);
            const path = `/api/v1/services/${encodeURIComponent(r.service)}/backends/${encodeURIComponent(r.address)}/${drain ? "drain" : "enable"}`;
            act(path, r.button, `${drain ? "drain" : "enable"} ${r.address}`);
          });
          r.row = el(
            "tr",
            { dataset: { backend: b.address } },
            el("td", null, el("span", { text: b.address }), r.role, r.reason),
            el("td", null, r.badge),
            r.weight,
            r.conns,
            el("td", null, r.button),
          );
          tbody.append(r.row);
          rows.set(`${s.name}/${b.address}`, r);
        }
        const head = el("tr");
        for (const h of ["backend", "state", "weight", "conns", ""]) head.append(el("th", { text: h }));
        const sv = {
          mode: el("span", { className: "muted service-mode" }),
          check: el("p", { className: "reason service-check" }),
          backups: el("p", { className: "reason service-backups" }),
        };
        heads.set(s.name, sv);
        box.append(
          el(
            "article",
            { className: "card", dataset: { service: s.name } },
            el(
              "div",
              { className: "card-head" },
              el("span", { className: "name", text: s.name }),
              el("span", { className: "muted", text: `${s.protocol || ""} ${s.listen || ""}` }),
              sv.mode,
            ),
            sv.check,
            sv.backups,
            el("div", { className: "table-wrap" }, el("table", null, el("thead", null, head), tbody)),
          ),
        );
      }
      if (!list.length) box.append(el("p", { className: "muted", text: "No services configured." }));
      serviceViews = { key, rows, heads };
    }
    for (const s of list) {
      const sv = serviceViews.heads.get(s.name);
      if (sv) {
        sv.mode.textContent = modeText(s);
        sv.check.textContent = checkText(s.check);
        sv.backups.textContent = s.on_backups
          ? "No regular backend is up: the backups take new connections."
          : "";
        sv.backups.hidden = !s.on_backups;
      }
      for (const b of s.backends) {
        const r = serviceViews.rows.get(`${s.name}/${b.address}`);
        r.state = b.state;
        r.row.dataset.state = b.state;
        r.badge.className = `badge ${badgeClass(b.state)}`;
        r.badge.textContent = b.state;
        r.weight.textContent = String(b.weight);
        r.conns.textContent = num(b.connections);
        r.reason.textContent = (b.reason || "") + (b.since ? ` · since ${clock(b.since)}` : "");
        r.button.textContent = heldBack(b.state) ? "Enable" : "Drain";
        r.role.textContent = b.backup ? (b.serving ? "backup · serving" : "backup · standby") : "";
        r.role.hidden = !b.backup;
      }
    }
  }

  // ---- cluster -------------------------------------------------------------------------------------

  let clusterKey = "";

  function renderCluster(c) {
    const key = JSON.stringify(c);
    if (key === clusterKey) return;
    clusterKey = key;
    const box = $("#cluster");
    if (!c) {
      box.replaceChildren(el("p", { className: "muted", text: "No cluster configured." }));
      return;
    }
    const members = Array.isArray(c.members) ? c.members : [];
    const objects = members.map((m) => (m && typeof m === "object" ? m : { node: String(m) }));
    const cols = [...new Set(["node", ...objects.flatMap((m) => Object.keys(m))])];
    const head = el("tr", null, ...cols.map((k) => el("th", { text: k.replaceAll("_", " ") })));
    const rows = objects.map((m) =>
      el(
        "tr",
        { dataset: { member: String(m.node ?? "") } },
        ...cols.map((k) =>
          el("td", {
            text:
              m[k] === null || m[k] === undefined
                ? "–"
                : typeof m[k] === "object"
                  ? JSON.stringify(m[k])
                  : String(m[k]),
          }),
        ),
      ),
    );
    box.replaceChildren(
      el(
        "article",
        { className: "card" },
        el(
          "div",
          { className: "card-head" },
          el("span", { className: "name", text: `node ${c.node}` }),
          el("span", {
            className: "muted",
            text: `owns ${c.buckets_owned} buckets · ${members.length} members`,
          }),
        ),
        el(
          "div",
          { className: "table-wrap" },
          el("table", null, el("thead", null, head), el("tbody", null, ...rows)),
        ),
      ),
    );
  }

  // ---- events ----------------------------------------------------------------------------------------

  let lastEventId = 0;

  function addEvent(e, current) {
    const list = $("#events");
    list.querySelector(".empty")?.remove();
    const what = e.kind === "backend" && e.backend ? `${e.service} ${e.backend}` : `${e.kind} ${e.name}`;
    const li = el(
      "li",
      { className: current ? "current" : "", dataset: { kind: e.kind, name: e.name, state: e.state } },
      el("time", { text: clock(e.at), title: e.at || "" }),
      el("span", { className: "what", text: what }),
      el(
        "span",
        { className: "state" },
        el("span", { className: `badge ${badgeClass(e.state)}`, text: e.state }),
      ),
      el("span", { className: "why", text: current ? `${e.reason} (state when the page opened)` : e.reason }),
    );
    list.prepend(li);
    while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
  }

  function seedEvents(s) {
    const now = [];
    for (const u of s.uplinks)
      now.push({ at: u.since, kind: "uplink", name: u.name, state: u.state, reason: u.reason || "" });
    for (const svc of s.services)
      for (const b of svc.backends)
        now.push({
          at: b.since,
          kind: "backend",
          name: `${svc.name}/${b.address}`,
          service: svc.name,
          backend: b.address,
          state: b.state,
          reason: b.reason || "",
        });
    now.sort((a, b) => String(a.at || "").localeCompare(String(b.at || "")));
    for (const e of now) addEvent(e, true);
    if (!now.length) $("#events").append(el("li", { className: "empty", text: "No events yet." }));
  }

  function connectEvents() {
    const es = new EventSource("/api/v1/events");
    es.onopen = () => setLive("live", "live");
    es.onerror = () => setLive("off", "reconnecting…");
    es.onmessage = (m) => {
      let e;
      try {
        e = JSON.parse(m.data);
      } catch {
        return;
      }
      if (typeof e.id === "number") {
        if (e.id <= lastEventId) return;
        lastEventId = e.id;
      }
      addEvent(e, false);
      refresh();
    };
  }

  // ---- polling ----------------------------------------------------------------------------------------

  let timer;
  let busy = false;
  let again = false;
  let seeded = false;

  async function refresh() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    clearTimeout(timer);
    try {
      const res = await fetch("/api/v1/status", { cache: "no-store" });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      render(await res.json());
    } catch (e) {
      banner([`The daemon is not answering (${e.message}); retrying…`]);
      setLive("off", "offline");
    } finally {
      busy = false;
      timer = setTimeout(refresh, POLL_MS);
      if (again) {
        again = false;
        refresh();
      }
    }
  }

  function render(s) {
    record(s);
    renderUplinks(s.uplinks || []);
    drawSplit();
    renderServices(s.services || []);
    renderCluster(s.cluster || null);
    if (!seeded) {
      seeded = true;
      seedEvents(s);
    }
    const meta = [`config ${s.config_version}`];
    if (s.applied_at) meta.push(`applied ${clock(s.applied_at)}`);
    if (s.started_at) meta.push(`running since ${clock(s.started_at)}`);
    $("#meta").textContent = meta.join(" · ");
    const warn = [];
    if (s.keeping_last_data_plane) warn.push("Every uplink is down: the last data plane is kept as it was.");
    if (s.last_reload_error) warn.push(`The last reload was refused: ${s.last_reload_error}`);
    banner(warn);
  }

  refresh();
  connectEvents();
})();
