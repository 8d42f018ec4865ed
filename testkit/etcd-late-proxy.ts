// Test-only lab proxy (test/lab/faults-cluster.test.ts) in front of etcd's HTTP/JSON gateway that answers one claim late: etcd applies it,
// the client has given up by the time the answer comes (a loaded etcd's fsync, a socket just
// back from a cut link). Everything else passes through; watch streams are piped.
//
//   etcd-late-proxy.ts --listen ADDR:PORT --target http://ETCD:2379 --key KEY --min-buckets N [--delay-ms MS]
//
// The first successful txn putting KEY with at least N buckets ({"buckets":[…]}) is answered
// after MS (default 1500). Prints {"ready":true} once listening, {"delayed":N} when it held one back.
import { createServer, request } from "node:http";
import { parseArgs } from "node:util";
import { parseEndpoint } from "../src/lab/tools/endpoint.ts";

const { values } = parseArgs({
  options: {
    listen: { type: "string" },
    target: { type: "string" },
    key: { type: "string" },
    "min-buckets": { type: "string" },
    "delay-ms": { type: "string", default: "1500" },
  },
});
if (!values.listen || !values.target || !values.key || !values["min-buckets"])
  throw new Error("usage: etcd-late-proxy.ts --listen ADDR:PORT --target URL --key KEY --min-buckets N");
const listen = parseEndpoint(values.listen);
const target = values.target.replace(/\/+$/, "");
const key = Buffer.from(values.key, "utf8").toString("base64");
const minBuckets = Number(values["min-buckets"]);
const delayMs = Number(values["delay-ms"]);
let delayed = false;

/** How many buckets a txn body puts under KEY (0: not such a put). */
function claimed(body: string): number {
  try {
    const t = JSON.parse(body) as { success?: { request_put?: { key?: string; value?: string } }[] };
    const put = t.success?.[0]?.request_put;
    if (put?.key !== key || !put.value) return 0;
    const v = JSON.parse(Buffer.from(put.value, "base64").toString("utf8")) as { buckets?: unknown[] };
    return v.buckets?.length ?? 0;
  } catch {
    return 0;
  }
}

createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (req.headers.authorization) headers.authorization = req.headers.authorization;
    const up = request(`${target}${req.url ?? "/"}`, { method: req.method, headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, { "content-type": "application/json" });
      if (req.url === "/v3/watch") {
        r.pipe(res);
        return;
      }
      const out: Buffer[] = [];
      r.on("data", (c: Buffer) => out.push(c));
      r.on("end", () => {
        const text = Buffer.concat(out).toString("utf8");
        const n = req.url === "/v3/kv/txn" ? claimed(body.toString("utf8")) : 0;
        if (!delayed && n >= minBuckets && text.includes('"succeeded":true')) {
          delayed = true;
          process.stdout.write(`${JSON.stringify({ delayed: n })}\n`);
          setTimeout(() => res.end(text), delayMs);
        } else res.end(text);
      });
    });
    up.on("error", () => res.destroy());
    res.on("close", () => up.destroy());
    up.end(body);
  });
}).listen(listen.port, listen.address, () => process.stdout.write(`${JSON.stringify({ ready: true })}\n`));
