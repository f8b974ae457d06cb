/**
 * The supervisor's SSH set-up, run in the background after every boot once the agent answers
 * (never on the readiness path): it injects the sandbox's host key and the host's user key
 * through the agent, starts sshd if the image has one, waits until it listens, pins the host key
 * in `vms/<id>/known_hosts`, and records the outcome in `vms/<id>/ssh.json`.
 *
 * The agent itself starts sshd at its first HELLO when the image has a host key: on a sandbox's
 * second and later boots the key injected before is on disk, so sshd may already run with it.
 * The key is rewritten (and sshd restarted) only when the guest's copy differs from ours.
 */
import type { AgentClient } from "../agent/client.ts";
import type { SshStatus } from "../agent/supervisor-messages.ts";
import { SmolError } from "../errors.ts";
import { GUEST_HOME } from "../guest.ts";
import { logEvent } from "../log.ts";
import type { SandboxRecord } from "../state/record.ts";
import { ensureHostKey, ensureUserKey, writeKnownHosts } from "../ssh/keys.ts";
import { readSshState, sshEndpoint, writeSshState, type SshState } from "../ssh/state.ts";
import { deferred } from "../util/deferred.ts";
import { sleep, within } from "../util/poll.ts";
import { printable } from "../util/printable.ts";

const SSHD = "/usr/sbin/sshd";
const GUEST_HOST_KEY = "/etc/ssh/ssh_host_ed25519_key";

/**
 * The most the set-up reads back from the guest per command. Everything here comes from a guest
 * that may be hostile (its key file can be a link to /dev/zero): past this, the command is killed
 * and the set-up fails, rather than the supervisor holding what the guest sends.
 */
const MAX_SETUP_OUTPUT = 64 * 1024;

/** Prints whether sshd exists and the guest's current ed25519 host public key, if any. */
const PROBE = `if [ -x ${SSHD} ]; then echo sshd=yes; else echo sshd=no; fi; cat ${GUEST_HOST_KEY}.pub 2>/dev/null; exit 0`;
/**
 * The probe without the key, for a guest whose key file printed more than a key is: the file
 * goes (it is no key, and the agent does not write through a link to a device), sshd's presence
 * is said.
 */
const PROBE_SSHD = `rm -f ${GUEST_HOST_KEY}.pub; if [ -x ${SSHD} ]; then echo sshd=yes; else echo sshd=no; fi`;

/**
 * smolvm's sshd drop-in. PAM costs ~0.35 s of every login under emulation (its modules are
 * loaded per connection) and does nothing a sandbox needs; key logins work without it.
 */
const SSHD_DROP_IN = "/etc/ssh/sshd_config.d/10-smolvm.conf";
const SSHD_CONF = "# Written by smolvm on every boot: logins without PAM are ~40% faster under emulation.\nUsePAM no";

/**
 * Authorizes $SMOLVM_USER_KEY for root (keeping keys the user added), (re)starts sshd and waits
 * until something listens on port 22. sshd daemonizes before it binds, hence the wait.
 */
const SETUP = `
set -u
mkdir -p ${GUEST_HOME}/.ssh && chmod 700 ${GUEST_HOME}/.ssh || exit 1
keys=${GUEST_HOME}/.ssh/authorized_keys
touch "$keys" && chmod 600 "$keys" || exit 1
grep -qxF -- "$SMOLVM_USER_KEY" "$keys" || printf '%s\\n' "$SMOLVM_USER_KEY" >> "$keys" || exit 1
mkdir -p /run/sshd && chmod 755 /run/sshd
if [ -d /etc/ssh/sshd_config.d ] && [ "$(cat ${SSHD_DROP_IN} 2>/dev/null)" != "$SMOLVM_SSHD_CONF" ]; then
  printf '%s\\n' "$SMOLVM_SSHD_CONF" > ${SSHD_DROP_IN} && SMOLVM_RESTART=1
fi
# Builtins only: under emulation every fork costs tens of milliseconds.
sshd_pids() { for d in /proc/[0-9]*; do read -r comm < "$d/comm" 2>/dev/null && [ "$comm" = sshd ] && echo "\${d#/proc/}"; done; }
listening() { grep -qE ':0016 0+:0000 0A' /proc/net/tcp /proc/net/tcp6 2>/dev/null; }
if [ "$SMOLVM_RESTART" = 1 ]; then
  pids=$(sshd_pids)
  [ -n "$pids" ] && kill $pids 2>/dev/null
  i=0; while listening && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
fi
if [ -z "$(sshd_pids)" ]; then ${SSHD} || exit 1; fi
i=0
while ! listening; do
  i=$((i+1))
  if [ $i -gt 600 ]; then echo "sshd did not listen on port 22 within 30 s" >&2; exit 1; fi
  sleep 0.05
done
`;

/** Runs the set-up once for this boot; never throws (the outcome goes to ssh.json and the log). */
export async function provisionSsh(vm: SandboxRecord, vmmPid: number, connect: () => Promise<AgentClient>): Promise<SshStatus> {
  const existing = readSshState(vm.id);
  if (existing !== undefined && existing.vmmPid === vmmPid && existing.state !== "pending") return statusOf(existing); // a re-attach: done already
  const started = Date.now();
  const endpoint = sshEndpoint(vm);
  let client: AgentClient | undefined;
  let outcome: Omit<SshState, "at" | "supervisorPid"> = { state: "pending", vmmPid };
  const record = (state: Omit<SshState, "at" | "supervisorPid">) => {
    outcome = state;
    writeSshState(vm.id, state);
  };
  const steps: Record<string, number> = {};
  const step = (name: string) => (steps[name] = Date.now() - started);
  try {
    writeSshState(vm.id, { state: "pending", vmmPid });
    if (endpoint === undefined) {
      record({ state: "unavailable", reason: "it has no SSH port (it was made by an earlier smolvm without a network; start it again to give it one)", vmmPid });
      return statusOf(outcome);
    }
    client = await connect();
    step("connected");
    const probe = await probeGuest(client, vm);
    const [found, ...rest] = probe.split("\n");
    if (found !== "sshd=yes") {
      record({
        state: "unavailable",
        reason: `its image "${vm.config.image}" has no SSH server (${SSHD})`,
        hint: "use an image with openssh-server (--image debian), or the agent channel (--comm-channel vsock or auto)",
        vmmPid,
      });
      return statusOf(outcome);
    }
    step("probed");
    const [user, host] = await Promise.all([ensureUserKey(), ensureHostKey(vm.id, vm.name)]);
    step("keys");
    await writeKnownHosts(vm.id, endpoint.host, endpoint.port, host.publicKey);
    const changed = keyBlob(rest.join("\n")) !== keyBlob(host.publicKey);
    if (changed) {
      await client.writeFile(GUEST_HOST_KEY, host.privateKey, { mode: 0o600, mkdirParents: true, timeoutMs: 30_000 });
      await client.writeFile(`${GUEST_HOST_KEY}.pub`, `${host.publicKey}\n`, { mode: 0o644, timeoutMs: 30_000 });
    }
    step("written");
    const setup = await client.run(SETUP, {
      env: { SMOLVM_USER_KEY: user.publicKey, SMOLVM_RESTART: changed ? "1" : "0", SMOLVM_SSHD_CONF: SSHD_CONF },
      timeoutMs: 60_000,
      maxOutputBytes: MAX_SETUP_OUTPUT,
    });
    if (setup.exitCode !== 0) {
      const why = printable(setup.stderr.trim().split("\n").slice(-3).join(" | "), 500) || `exit status ${setup.exitCode ?? setup.signal}`;
      throw new Error(`starting sshd failed: ${why}`);
    }
    record({ state: "ready", vmmPid, setupMs: Date.now() - started });
    logEvent("info", "ssh ready", { vm: vm.id, setupMs: Date.now() - started, hostKeyWritten: changed, steps });
  } catch (thrown) {
    const message = printable(thrown instanceof Error ? thrown.message : String(thrown), 1000);
    logEvent("error", `supervisor: SSH set-up failed: ${message}`, { vm: vm.id, stack: thrown instanceof Error ? thrown.stack : undefined });
    try {
      record({ state: "failed", reason: `SSH set-up failed: ${message}`, vmmPid });
    } catch {
      // The sandbox is being deleted: nobody will ask.
    }
  } finally {
    await client?.close();
  }
  return statusOf(outcome);
}

/**
 * Whether sshd is there and the guest's host key as it is. A key file that prints more than
 * MAX_SETUP_OUTPUT (something in the guest made it a link to /dev/zero) is read no further: the
 * key counts as not ours, and is written over.
 */
async function probeGuest(client: AgentClient, vm: SandboxRecord): Promise<string> {
  try {
    return (await client.run(PROBE, { timeoutMs: 30_000, maxOutputBytes: MAX_SETUP_OUTPUT })).stdout;
  } catch (error) {
    if (!(error instanceof SmolError) || error.code !== "RESOURCE_EXHAUSTED") throw error;
    logEvent("warn", `supervisor: the guest's ${GUEST_HOST_KEY}.pub printed more than ${MAX_SETUP_OUTPUT} bytes; its key is replaced`, { vm: vm.id });
    return (await client.run(PROBE_SSHD, { timeoutMs: 30_000, maxOutputBytes: MAX_SETUP_OUTPUT })).stdout;
  }
}

function statusOf(state: Omit<SshState, "at" | "supervisorPid">): SshStatus {
  return {
    state: state.state,
    ...(state.reason === undefined ? {} : { reason: state.reason }),
    ...(state.hint === undefined ? {} : { hint: state.hint }),
  };
}

const SSH_QUIET_MS = 300;
const SSH_MAX_DEFER_MS = 5_000;

/**
 * The SSH set-up of one boot, as the supervisor owns it: in the background, never on the
 * readiness path, and not while a caller's first commands run. On one emulated vCPU the set-up's
 * own execs made a caller's first command ~50 % slower (190-220 ms against 120-145 ms), so it
 * waits until no stream has been open for 300 ms (at most 5 s); a sandbox whose channel is SSH
 * needs it at once. `status` answers `supervisor.ssh`.
 */
export class SshSetup {
  private current: SshStatus = { state: "pending" };
  private readonly finished = deferred<void>();

  constructor(vm: SandboxRecord, vmmPid: number, connect: () => Promise<AgentClient>, idleMs: () => number) {
    void (async () => {
      if (vm.channel !== "ssh") {
        const started = Date.now();
        while (idleMs() < SSH_QUIET_MS && Date.now() - started < SSH_MAX_DEFER_MS) await sleep(50);
      }
      this.current = await provisionSsh(vm, vmmPid, connect);
      this.finished.resolve();
    })();
  }

  /** How the set-up stands; with `wait`, once it has finished (or `timeoutMs` has passed). */
  async status(wait: boolean, timeoutMs = 30_000): Promise<SshStatus> {
    if (wait) await within(this.finished.promise, timeoutMs);
    return this.current;
  }
}

/** The type and base64 blob of a public key line, without its comment. */
function keyBlob(line: string): string {
  return line.trim().split(/\s+/).slice(0, 2).join(" ");
}
