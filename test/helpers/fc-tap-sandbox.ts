/**
 * A Firecracker sandbox with a TAP network on the stand-in VMM, run inside a network namespace a
 * test made (`ip netns exec NS bun test/helpers/fc-tap-sandbox.ts KERNEL ROOTFS`, the stand-in
 * first on PATH): create, what the host has for it while it runs, a command, delete --force,
 * what is left. Prints one JSON object of what it saw. KVM's verdict is faked in this process only,
 * as in test/lib/supervisor/firecracker.test.ts.
 */
import { spawnSync } from "node:child_process";
import { FirecrackerBackend, firecrackerBackend } from "../../lib/backends/firecracker/backend.ts";
import { SmolVM } from "../../lib/index.ts";
import { listSmolvmTable } from "../../lib/network/nft-run.ts";

const [kernelPath, rootfsPath] = process.argv.slice(2) as [string, string];
const probing = new FirecrackerBackend({ kvm: () => () => ({ usable: true }) });
Object.assign(firecrackerBackend, { probe: probing.probe.bind(probing) });

const link = (name: string) => spawnSync("ip", ["-j", "addr", "show", "dev", name], { encoding: "utf8" });
const seen: Record<string, unknown> = {};
const vm = await SmolVM.create({ backend: "firecracker", network: "tap", kernelPath, rootfsPath, bootTimeoutMs: 20_000, name: "fc-tap" });
try {
  const info = await vm.info();
  seen.info = { id: info.id, backend: info.backend, network: info.network, guestIp: info.guestIp };
  const shown = link(`sm-${info.id}`);
  seen.tap = shown.status === 0 ? (JSON.parse(shown.stdout) as Array<{ addr_info: Array<{ local: string }> }>)[0]!.addr_info.map((a) => a.local) : null;
  seen.rulesWhileRunning = (await listSmolvmTable()).includes(info.id);
  seen.run = (await vm.commands.run(["echo", "over vsock"])).stdout;
} finally {
  await vm.delete({ force: true });
}
const id = (seen.info as { id: string }).id;
seen.tapAfter = link(`sm-${id}`).status === 0;
seen.rulesAfter = (await listSmolvmTable()).includes(id);
seen.sandboxes = (await SmolVM.list()).length;
console.log(JSON.stringify(seen));
