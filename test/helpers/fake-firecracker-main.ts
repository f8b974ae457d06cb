/**
 * A stand-in `firecracker` executable for tests of process handling: it takes the real binary's
 * flags, serves the spec-checking fake API on `--api-sock` (inside the jail when the stand-in
 * jailer exec'd it), relays vsock connections to a test agent once the VM "runs", and reports
 * what it received to a JSON file after every request.
 *
 * Behaviour comes from the environment the wrapper script sets (see writeFakeFirecracker):
 *   FAKE_FC_ROOT=<jail root> (set by the stand-in jailer), FAKE_FC_REPORT=<file>, FAKE_FC_AGENT_SOCKET=<unix socket>,
 *   FAKE_FC_EXIT_EARLY=<message> (print it to stderr and exit 1 before serving),
 *   FAKE_FC_GUEST_AGENT=<native agent binary>: the "guest" (see guest below),
 *   FAKE_FC_FAULTS=<JSON list of {method, path, message}>: answer those requests with a 400.
 *
 * With a guest agent the stand-in behaves as Firecracker does around its guest: InstanceStart (or
 * a snapshot load) boots the guest, here the native agent in test mode listening on a socket that
 * vsock port 1024 relays to; pausing stops it (SIGSTOP) and resuming continues it; the guest
 * powering off (the agent's shutdown ends it) ends the stand-in, and SIGTERM or SIGKILL of the
 * stand-in ends the guest (a watcher shell kills it when its VMM is gone, as a guest dies with
 * its VMM).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { FakeFirecracker, type InjectedFault, type InstanceState } from "./firecracker-fake.ts";

const args = process.argv.slice(2);

function flag(name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

if (args.includes("--version")) {
  console.log("Firecracker v1.17.0-dev\n\nSupported snapshot data format versions: v8.0.0");
  process.exit(0);
}
if (process.env.FAKE_FC_EXIT_EARLY) {
  console.error(process.env.FAKE_FC_EXIT_EARLY);
  process.exit(1);
}

// Exec'd by the stand-in jailer (fake-firecracker-bin.ts) inside the jail it built: every path
// Firecracker is given is inside this root.
const root = process.env.FAKE_FC_ROOT;
const apiSocket = flag("--api-sock") ?? "/run/firecracker.socket";
const socketPath = root === undefined ? apiSocket : join(root, apiSocket);
const id = flag("--id") ?? "anonymous-instance";

const report = process.env.FAKE_FC_REPORT;
const guestAgent = process.env.FAKE_FC_GUEST_AGENT;
const guestSocket = join(dirname(socketPath), "fake-guest.sock");
const agent = process.env.FAKE_FC_AGENT_SOCKET ?? (guestAgent === undefined ? undefined : guestSocket);

/** The "guest": the watcher shell, and the agent's pid it printed. */
let guest: { watcher: ChildProcess; agentPid: Promise<number> } | undefined;

function bootGuest(): void {
  if (guestAgent === undefined || guest !== undefined) return;
  rmSync(guestSocket, { force: true });
  const script = `"$1" --listen "unix:$2" & agent=$!; echo "$agent"
while kill -0 "$3" 2>/dev/null && kill -0 "$agent" 2>/dev/null; do sleep 0.05; done
kill -9 "$agent" 2>/dev/null; wait "$agent" 2>/dev/null; exit 0`;
  const watcher = spawn("/bin/sh", ["-c", script, "guest", guestAgent, guestSocket, String(process.pid)], { stdio: ["ignore", "pipe", "inherit"] });
  const agentPid = new Promise<number>((resolve) => watcher.stdout!.once("data", (chunk: Buffer) => resolve(Number(chunk.toString().trim()))));
  // The guest powered off (or was killed): Firecracker exits as its guest does.
  watcher.once("exit", () => void fake.close().then(() => process.exit(0)));
  guest = { watcher, agentPid };
}

async function onState(state: InstanceState): Promise<void> {
  if (state === "Not started") return;
  bootGuest();
  if (guest === undefined) return;
  const pid = await guest.agentPid;
  try {
    process.kill(pid, state === "Paused" ? "SIGSTOP" : "SIGCONT");
  } catch { /* the guest is gone; the watcher ends us */ }
}

const fake = await FakeFirecracker.start({
  socketPath,
  id,
  ...(root === undefined ? {} : { root }),
  ...(agent === undefined ? {} : { vsockPorts: { 1024: agent } }),
  onState,
  onRun: () => console.log("fake guest: running"),
  onRequest: (self) => {
    if (report === undefined) return;
    writeFileSync(`${report}.tmp`, JSON.stringify({
      argv: args,
      requests: self.requests,
      violations: self.violations,
      responseViolations: self.responseViolations,
      state: self.state,
    }));
    renameSync(`${report}.tmp`, report);
  },
});
for (const fault of JSON.parse(process.env.FAKE_FC_FAULTS ?? "[]") as InjectedFault[]) fake.injectFault(fault);
console.error(`fake firecracker: serving ${socketPath}`);
const stop = () => {
  void guest?.agentPid.then((pid) => {
    try {
      process.kill(pid, "SIGKILL");
    } catch { /* gone */ }
  });
  void fake.close().then(() => process.exit(0));
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
