// Readiness for Type=notify: the message systemd-notify really sends, caught on a socket of our own
// (a stand-in for the service manager's; Node has no AF_UNIX datagram sockets, python3 has).
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { notifyReady } from "../../src/system/sd-notify.ts";

const has = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;

// Receives datagrams until READY=1, closing any passed fds (systemd-notify's barrier waits for that).
const RECEIVER = `
import array, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(10)
print("bound", flush=True)
while True:
    msg, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(16 * 4))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
            for fd in fds:
                os.close(fd)
    print(msg.decode().replace("\\n", " "), flush=True)
    if "READY=1" in msg.decode():
        break
`;

test("outside systemd (no NOTIFY_SOCKET) nothing is run", async () => {
  const ran: string[][] = [];
  const sent = await notifyReady({}, (argv) => {
    ran.push([...argv]);
    return Promise.resolve({ code: 0, stdout: "", stderr: "" });
  });
  assert.equal(sent, false);
  assert.deepEqual(ran, []);
});

test("a failing systemd-notify is reported, not swallowed", async () => {
  const fail = () => Promise.resolve({ code: 1, stdout: "", stderr: "No such file or directory" });
  await assert.rejects(notifyReady({ NOTIFY_SOCKET: "/nonexistent" }, fail), /No such file/);
});

test("under systemd: READY=1 with this process as the main pid reaches NOTIFY_SOCKET", async (t) => {
  if (!has("systemd-notify") || !has("python3")) return t.skip("needs systemd-notify and python3");
  const dir = mkdtempSync(join(tmpdir(), "nflb-notify-"));
  const sock = join(dir, "notify");
  const receiver = spawn("python3", ["-c", RECEIVER, sock], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    let out = "";
    const done = new Promise<void>((resolve) => receiver.on("close", () => resolve()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("receiver did not bind")), 10_000);
      receiver.stdout.setEncoding("utf8").on("data", (d: string) => {
        out += d;
        if (out.includes("bound")) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    assert.equal(await notifyReady({ ...process.env, NOTIFY_SOCKET: sock }), true);
    await done;
    assert.match(out, /READY=1/);
    assert.match(out, new RegExp(`MAINPID=${process.pid}\\b`));
  } finally {
    receiver.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});
