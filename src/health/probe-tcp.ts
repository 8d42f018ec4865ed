import { connect } from "node:net";
import type { ProbeOnce } from "./probe-inprocess.ts";

/** `tcp`: a completed handshake to target:port is an answer; a refusal or silence is not. */
export function tcpProbe(port: number): ProbeOnce {
  return (target, source, timeoutMs) =>
    new Promise((resolve) => {
      const t0 = performance.now();
      const sock = connect({ host: target.text, port, localAddress: source.text, family: target.family });
      let done = false;
      const finish = (rtt: number | null) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        sock.destroy();
        resolve(rtt);
      };
      // setImmediate: after an event-loop stall, a connect that did complete is read first.
      const timer = setTimeout(() => setImmediate(() => finish(null)), timeoutMs);
      sock.once("connect", () => finish(performance.now() - t0));
      sock.once("error", () => finish(null));
    });
}
