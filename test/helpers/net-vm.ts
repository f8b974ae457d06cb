/**
 * One VM wired by lib/network, run inside a namespace a test made (`ip netns exec HOST bun
 * test/helpers/net-vm.ts SPEC_JSON`): the network's prepare, QEMU's launch through the network's
 * prefix (as sandbox/launch.ts does), connect, and the network service (DNS responder, policy
 * changes), as a sandbox's supervisor does, then the teardown its end does. The test talks to the guest through the agent socket (a file: reachable from
 * any namespace).
 *
 * stdout: one JSON line per event (`ready` with the VMM pid, agent socket and timings, `updated`,
 * `stopped`, `error`). stdin: JSON lines `{"op":"update","allow":[],"deny":[]}`; end of stdin (or
 * `{"op":"stop"}`) kills the VM and tears the network down.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { hostTscKhz } from "../../lib/backends/accel.ts";
import { qemuBackend } from "../../lib/backends/qemu/backend.ts";
import { kernelCmdline } from "../../lib/kernel/cmdline.ts";
import { connectNetwork, parsePolicy, prepareNetwork, reclaimNetwork, type NetworkMode, type SandboxNetwork } from "../../lib/network/index.ts";
import { startNetworkService } from "../../lib/network/service.ts";

export interface NetVmSpec {
  id: string;
  mode: NetworkMode;
  dir: string;
  kernel: string;
  image: string;
  allowHosts?: string[];
  denyHosts?: string[];
  ip?: string;
  sshPort?: number;
  dnsPort: number;
}

const say = (event: Record<string, unknown>) => console.log(JSON.stringify(event));

async function main(spec: NetVmSpec): Promise<void> {
  mkdirSync(spec.dir, { recursive: true });
  const sandbox: SandboxNetwork = {
    id: spec.id, mode: spec.mode, dir: spec.dir, policy: parsePolicy(spec), ip: spec.ip ?? null, sshPort: spec.sshPort ?? null, dnsPort: spec.dnsPort,
  };
  const t0 = performance.now();
  const disk = await qemuBackend.prepareDisk({ imagePath: spec.image, vmDir: spec.dir, mode: "isolated" });
  const t1 = performance.now();
  const network = await prepareNetwork(sandbox);
  const t2 = performance.now();
  const vmm = await qemuBackend.launch({
    arch: "x86_64", accel: "tcg", vcpus: 1, memoryMiB: 512, kernelPath: spec.kernel,
    cmdline: kernelCmdline({ arch: "x86_64", tscKhz: hostTscKhz()!, extra: [`smolvm.hostname=${spec.id}`, ...network.kernelArgs] }),
    disk, network: network.netdev, launchPrefix: network.launchPrefix,
    agentSocketPath: join(spec.dir, "agent.sock"), controlSocketPath: join(spec.dir, "qmp.sock"),
    serialLogPath: join(spec.dir, "console.log"), vmmLogPath: join(spec.dir, "vmm.log"),
  });
  const t3 = performance.now();
  await connectNetwork(sandbox, vmm.pid);
  const t4 = performance.now();
  const service = await startNetworkService(sandbox, vmm.pid, { log: (message) => console.error(message) });
  say({
    event: "ready", pid: vmm.pid, agentSocket: join(spec.dir, "agent.sock"), guest: network.guest,
    timingsMs: { disk: t1 - t0, prepare: t2 - t1, launch: t3 - t2, attach: t4 - t3 },
  });
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= (async () => {
    vmm.kill();
    await vmm.exited;
    await reclaimNetwork({ id: sandbox.id, dir: sandbox.dir, mode: sandbox.mode });
    await service.close();
    say({ event: "stopped" });
    process.exit(0);
  })());
  const lines = createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    const request = JSON.parse(line) as { op: string; allow?: string[]; deny?: string[] };
    if (request.op === "stop") return void stop();
    service.update(request).then(
      (policy) => say({ event: "updated", policy }),
      (error: Error) => say({ event: "error", message: error.message }),
    );
  });
  lines.on("close", () => void stop());
}

main(JSON.parse(process.argv[2]!) as NetVmSpec).catch((error: Error) => {
  say({ event: "error", message: error.message });
  process.exit(1);
});
