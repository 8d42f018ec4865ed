// Bench server: accepts TCP connections, writes one byte and closes. The server closes first, so
// TIME_WAIT lands here and the client's port range stays free for the next run.
//
//   conn-server.ts --listen ADDR:PORT [--listen ADDR:PORT …]
//
// Prints {"ready":true} once every listener is bound; runs until SIGTERM.
import { createServer } from "node:net";
import { parseArgs } from "node:util";
import { parseEndpoint } from "../../src/lab/tools/endpoint.ts";

const { values } = parseArgs({
  options: { listen: { type: "string", multiple: true, default: [] } },
  strict: true,
});
const endpoints = (values.listen ?? []).map(parseEndpoint);
if (endpoints.length === 0) throw new Error("--listen ADDR:PORT is required");

const ONE_BYTE = Buffer.from("x");
await Promise.all(
  endpoints.map(
    (ep) =>
      new Promise<void>((resolve, reject) => {
        const server = createServer((sock) => {
          sock.on("error", () => undefined);
          sock.end(ONE_BYTE);
        });
        server.once("error", reject);
        server.listen({ host: ep.address, port: ep.port, backlog: 4096 }, () => resolve());
      }),
  ),
);
process.stdout.write(JSON.stringify({ ready: true, pid: process.pid }) + "\n");
process.on("SIGTERM", () => process.exit(0));
