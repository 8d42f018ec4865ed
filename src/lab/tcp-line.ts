import { connect } from "node:net";

/**
 * One TCP connection to host:port that reads the server's first line (the lab servers answer with
 * one), then closes with a FIN. Rejects with the socket error's code, "timeout", or how the
 * connection closed early.
 */
export function tcpLine(o: {
  host: string;
  port: number;
  source?: string;
  timeoutMs: number;
}): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: o.host, port: o.port, ...(o.source ? { localAddress: o.source } : {}) });
    let buf = "";
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error("timeout"));
    }, o.timeoutMs);
    sock.setEncoding("utf8");
    sock.on("data", (d: string) => {
      buf += d;
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      clearTimeout(timer);
      sock.end();
      resolve(buf.slice(0, nl));
    });
    sock.on("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new Error(err.code ?? err.message));
    });
    sock.on("close", () => {
      clearTimeout(timer);
      reject(new Error(buf ? "closed before newline" : "closed without reply"));
    });
  });
}
