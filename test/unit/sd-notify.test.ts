// Readiness for Type=notify: the message systemd-notify really sends, caught on a socket of our own
// (a stand-in for the service manager's; Node has no AF_UNIX datagram sockets, python3 has).
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { notifyReady } from "../../src/system/sd-notify.ts";
import { until } from "../../testkit/until.ts";

const has = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;

// Receives datagrams, closing any passed fds (systemd-notify's barrier waits for that), until the
// test stops it. It must not stop at READY=1: systemd-notify sends its BARRIER=1 after that, and a
// socket already gone fails it (ECONNREFUSED) whenever the receiver wins the race to exit.
const RECEIVER = `
import array, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(120)
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
    receiver.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    await until("the receiver to bind its socket", () => out.includes("bound") || receiver.exitCode !== null);
    assert.equal(await notifyReady({ ...process.env, NOTIFY_SOCKET: sock }), true);
    // Printed before the barrier was answered, but the pipe may deliver it a moment later.
    await until("READY=1 at the receiver", () => out.includes("READY=1") || receiver.exitCode !== null);
    assert.match(out, /READY=1/);
    assert.match(out, new RegExp(`MAINPID=${process.pid}\\b`));
  } finally {
    receiver.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});
