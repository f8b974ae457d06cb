/**
 * Writes an executable `firecracker` (or `jailer`) into a test's directory that runs
 * fake-firecracker-main.ts with this Bun (the jailer after its own steps), so process handling is
 * tested on a real child process.
 */
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("./fake-firecracker-main.ts", import.meta.url));

export interface FakeBinaryOptions {
  mode?: "firecracker" | "jailer";
  /** Where the fake writes what it received, after every request. */
  report?: string;
  /** The test agent's Unix socket, served on guest vsock port 1024 once the VM runs. */
  agentSocket?: string;
  /** Print this to stderr and exit 1 at once. */
  exitEarly?: string;
  /** The native agent binary to run as the guest once the VM starts (see fake-firecracker-main.ts). */
  guestAgent?: string;
  /** Requests answered with a 400 and this fault message. */
  faults?: Array<{ method: string; path: string; message: string }>;
}

/** What the stand-in last wrote to `report`, after its latest request (fake-firecracker-main.ts). */
export interface FakeReport {
  argv: string[];
  requests: Array<{ method: string; path: string; body: Record<string, unknown>; status: number }>;
  violations: string[];
  responseViolations: string[];
  state: string;
}

export function readFakeReport(path: string): FakeReport {
  return JSON.parse(readFileSync(path, "utf8")) as FakeReport;
}

function quote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * The stand-in jailer: what Firecracker's jailer does before it execs Firecracker (its docs, as
 * lib/backends/firecracker/jailer.ts sets them out), on a real process: it takes only the flags
 * smolvm may pass and refuses anything else, needs root, checks the exec file exists and is named
 * like Firecracker, builds `<chroot-base-dir>/<exec name>/<id>/root/` with the exec file copied
 * in and `dev/kvm` and `dev/net/tun` made and handed to uid:gid (regular files stand in for the
 * device nodes, and refuse to be made twice as mknod does), then execs the stand-in Firecracker
 * in the same process with `--id <id>`, the jailer's start-time flags and the arguments after
 * `--`, its working directory the jail. Not emulated: the chroot itself (the stand-in resolves
 * its paths under FAKE_FC_ROOT instead), dropping to uid:gid, cgroups, namespaces.
 */
const JAILER_SCRIPT = `
id= exec_file= uid= gid= base=/srv/jailer
fail() { echo "Jailer error: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
  case "$1" in
    --id) id=$2; shift 2 ;;
    --exec-file) exec_file=$2; shift 2 ;;
    --uid) uid=$2; shift 2 ;;
    --gid) gid=$2; shift 2 ;;
    --chroot-base-dir) base=$2; shift 2 ;;
    --cgroup-version) [ "$2" = 1 ] || [ "$2" = 2 ] || fail "invalid cgroup version $2"; shift 2 ;;
    --parent-cgroup|--resource-limit) shift 2 ;;
    --cgroup|--netns|--new-pid-ns|--daemonize) fail "$1 is not emulated by the stand-in" ;;
    --) shift; break ;;
    *) fail "unexpected argument: $1" ;;
  esac
done
[ -n "$id" ] || fail "missing --id"
[ -n "$exec_file" ] || fail "missing --exec-file"
[ -n "$uid" ] || fail "missing --uid"
[ -n "$gid" ] || fail "missing --gid"
[ "$(id -u)" = 0 ] || fail "Failed to create the jail: Operation not permitted (os error 1)"
printf '%s' "$id" | grep -Eq '^[A-Za-z0-9-]{1,64}$' || fail "invalid instance id: $id"
case "$base" in /*) ;; *) fail "the chroot base directory must be absolute: $base" ;; esac
[ -f "$exec_file" ] || fail "the exec file does not exist: $exec_file"
name=$(basename "$exec_file")
case "$name" in *firecracker*) ;; *) fail "Invalid filename. The filename of --exec-file must contain \"firecracker\": $name" ;; esac
root="$base/$name/$id/root"
mkdir -p "$root/dev/net" || exit 1
[ -e "$root/dev/kvm" ] && fail "Failed to create /dev/kvm via mknod inside the jail: File exists (os error 17)"
: > "$root/dev/kvm" && : > "$root/dev/net/tun" || exit 1
cp "$exec_file" "$root/$name" || exit 1
chown "$uid:$gid" "$root" "$root/dev/kvm" "$root/dev/net/tun" || exit 1
cd "$root" || exit 1
export FAKE_FC_ROOT="$root"
exec "$BUN" "$MAIN" --id "$id" --start-time-us 0 --start-time-cpu-us 0 --parent-cpu-time-us 0 "$@"
`;

export function writeFakeFirecracker(dir: string, options: FakeBinaryOptions = {}): string {
  const name = options.mode === "jailer" ? "jailer" : "firecracker";
  const path = join(dir, name);
  const env = [
    `BUN=${quote(process.execPath)}`,
    `MAIN=${quote(MAIN)}`,
    ...(options.report === undefined ? [] : [`FAKE_FC_REPORT=${quote(options.report)}`]),
    ...(options.agentSocket === undefined ? [] : [`FAKE_FC_AGENT_SOCKET=${quote(options.agentSocket)}`]),
    ...(options.exitEarly === undefined ? [] : [`FAKE_FC_EXIT_EARLY=${quote(options.exitEarly)}`]),
    ...(options.guestAgent === undefined ? [] : [`FAKE_FC_GUEST_AGENT=${quote(options.guestAgent)}`]),
    ...(options.faults === undefined ? [] : [`FAKE_FC_FAULTS=${quote(JSON.stringify(options.faults))}`]),
  ];
  const body = options.mode === "jailer" ? JAILER_SCRIPT : 'exec "$BUN" "$MAIN" "$@"\n';
  writeFileSync(path, `#!/bin/sh\nexport ${env.join(" ")}\n${body}`);
  chmodSync(path, 0o755);
  return path;
}
