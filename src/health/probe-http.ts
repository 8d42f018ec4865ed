import { request } from "node:http";
import { formatHostPort } from "../net/ip.ts";
import type { ProbeOnce } from "./probe-inprocess.ts";

/** `http`: GET path on target:port; a 2xx or 3xx status line within the timeout is an answer. */
export function httpProbe(port: number, path: string): ProbeOnce {
  return (target, source, timeoutMs) =>
    new Promise((resolve) => {
      const t0 = performance.now();
      const req = request({
        host: target.text,
        port,
        path,
        method: "GET",
        family: target.family,
        localAddress: source.text,
        // A fresh connection per probe: a pooled one could outlive a change of route.
        agent: false,
        headers: { host: formatHostPort(target, port), "user-agent": "nflb-probe", connection: "close" },
      });
      let done = false;
      const finish = (rtt: number | null) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        req.destroy();
        resolve(rtt);
      };
      // setImmediate: after an event-loop stall, a response that did arrive is read first.
      const timer = setTimeout(() => setImmediate(() => finish(null)), timeoutMs);
      req.once("response", (res) => {
        const status = res.statusCode ?? 0;
        res.resume();
        finish(status >= 200 && status < 400 ? performance.now() - t0 : null);
      });
      req.once("error", () => finish(null));
      req.end();
    });
}
