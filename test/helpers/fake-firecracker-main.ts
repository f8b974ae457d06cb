/**
 * A stand-in `firecracker` (or `jailer`) executable for tests of process handling: it takes the
 * real binary's flags, serves the spec-checking fake API on `--api-sock` (inside the jail it would
 * build, in jailer mode), relays vsock connections to a test agent once the VM "runs", and reports
 * what it received to a JSON file after every request.
 *
 * Behaviour comes from the environment the wrapper script sets (see writeFakeFirecracker):
 *   FAKE_FC_MODE=firecracker|jailer, FAKE_FC_REPORT=<file>, FAKE_FC_AGENT_SOCKET=<unix socket>,
 *   FAKE_FC_EXIT_EARLY=<message> (print it to stderr and exit 1 before serving).
 */
import { renameSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { FakeFirecracker } from "./firecracker-fake.ts";

const args = process.argv.slice(2);
const mode = process.env.FAKE_FC_MODE ?? "firecracker";

function flag(name: string, list: readonly string[] = args): string | undefined {
  const i = list.indexOf(name);
  return i >= 0 ? list[i + 1] : undefined;
}

if (args.includes("--version")) {
  console.log("Firecracker v1.17.0-dev\n\nSupported snapshot data format versions: v8.0.0");
  process.exit(0);
}
if (process.env.FAKE_FC_EXIT_EARLY) {
  console.error(process.env.FAKE_FC_EXIT_EARLY);
  process.exit(1);
}

let socketPath: string;
let id: string;
let root: string | undefined;
if (mode === "jailer") {
  const separator = args.indexOf("--");
  const own = separator >= 0 ? args.slice(0, separator) : args;
  const forwarded = separator >= 0 ? args.slice(separator + 1) : [];
  id = flag("--id", own)!;
  root = join(flag("--chroot-base-dir", own)!, basename(flag("--exec-file", own)!), id, "root");
  socketPath = join(root, flag("--api-sock", forwarded) ?? "/run/firecracker.socket");
} else {
  socketPath = flag("--api-sock")!;
  id = flag("--id") ?? "anonymous-instance";
}

const report = process.env.FAKE_FC_REPORT;
const agent = process.env.FAKE_FC_AGENT_SOCKET;
const fake = await FakeFirecracker.start({
  socketPath,
  id,
  ...(root === undefined ? {} : { root }),
  ...(agent === undefined ? {} : { vsockPorts: { 1024: agent } }),
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
console.error(`fake firecracker: serving ${socketPath}`);
const stop = () => void fake.close().then(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
