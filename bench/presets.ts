/**
 * Bench phases of coding-agent presets and directory transfers:
 *
 * - `file.upload.dir`: a 2,000-file source tree into a sandbox with `vm.files.uploadDir` (tar stream
 *   MB/s), paired with `floor.dir-upload`: the same tar stream piped straight into `tar -x` in a
 *   guest whose PID 1 is a shell on the raw virtio-serial port (no agent, no framing), writing
 *   to the same kind of disk.
 * - `preset.start.cached`: `startAgent("claude")` with its image cached (what `smolvm claude
 *   start --no-attach` runs) until `claude --version` answers, against the boot floor: a warm
 *   start, restoring the image's template; `preset.start.cold` is the same start booted.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { LaunchSpec } from "../lib/backends/types.ts";
import { TimeoutError } from "../lib/errors.ts";
import type { SmolVM } from "../lib/smolvm.ts";
import { packTree } from "../lib/tar/pack.ts";
import { listTree, type TreeListing } from "../lib/tar/tree.ts";
import { RAW_DONE, shellAsInit, withRawPort } from "./floors.ts";

export const DIR_FILES = 2000;
const DIR_READY = "smolvm-dir-ready";

/** A source-like tree: 2,000 files of 200 B to 12 KiB in 50 directories. */
export async function makeBenchTree(root: string): Promise<{ listing: TreeListing; tar: Buffer }> {
  for (let d = 0; d < 50; d++) {
    const dir = join(root, `module${d}`, "src");
    await mkdir(dir, { recursive: true });
    for (let f = 0; f < DIR_FILES / 50; f++) {
      const line = `export const value${f} = ${d * 1000 + f}; // padding to look like source\n`;
      await writeFile(join(dir, `file${f}.ts`), line.repeat(3 + ((d * 31 + f * 17) % 160)));
    }
  }
  const listing = await listTree(root);
  const chunks: Buffer[] = [];
  for await (const chunk of packTree(root, listing.entries)) chunks.push(chunk);
  return { listing, tar: Buffer.concat(chunks) };
}

/** uploadDir of the tree into a fresh guest directory; MB/s of its tar stream. */
export async function timedDirUpload(vm: SmolVM, root: string, listing: TreeListing, tarBytes: number, guestDir: string): Promise<number> {
  const started = performance.now();
  await vm.files.uploadDir(root, guestDir, { listing });
  return tarBytes / 1e6 / ((performance.now() - started) / 1000);
}

/**
 * PID 1 of the directory floor: read exactly `bytes` from the agent's port into `tar -x` on the
 * root disk, then say done on the port. Same quoting rules as rawChannelScript.
 */
export function dirFloorScript(bytes: number): string {
  return [
    "mount -t proc proc /proc", "mount -t sysfs sysfs /sys", "mount -t devtmpfs devtmpfs /dev",
    "for p in /sys/class/virtio-ports/*; do [ $(cat $p/name) = org.smolvm.agent ] && port=/dev/${p##*/}; done",
    "mkdir -p /tmp/dir-floor",
    "exec 3<>$port",
    `echo ${DIR_READY} >&3`,
    `head -c ${bytes} <&3 | tar -x -f - -C /tmp/dir-floor`,
    `echo ${RAW_DONE} >&3`,
    "while :; do sleep 1000; done",
  ].join("; ");
}

export function dirFloorInit(bytes: number): { path: string; args: string } {
  return shellAsInit(dirFloorScript(bytes));
}

/** The tar stream through the raw port into the guest's tar; MB/s from the guest's "ready" to its "done". */
export async function dirFloor(spec: LaunchSpec, tar: Buffer, timeoutMs: number): Promise<number> {
  return withRawPort(spec, timeoutMs, (sock, vmm, deadline) =>
    new Promise<number>((resolve, reject) => {
      let tail = "";
      const timer = setTimeout(() => reject(new TimeoutError(`The directory floor did not finish within ${timeoutMs} ms`, { hint: `see ${spec.serialLogPath}` })), Math.max(1, deadline - Date.now()));
      void vmm.exited.then(() => reject(new Error("QEMU exited during the directory floor")));
      sock.on("error", reject);
      // Timed from the guest's "ready" (it has booted and opened the port) to its "done".
      let started = 0;
      sock.on("data", (data: Buffer) => {
        tail += data.toString("latin1");
        if (started === 0 && tail.includes(DIR_READY)) {
          started = performance.now();
          sock.write(tar);
        }
        if (started !== 0 && tail.includes(RAW_DONE)) {
          clearTimeout(timer);
          resolve(tar.length / 1e6 / ((performance.now() - started) / 1000));
        }
      });
    }));
}

/** startAgent("claude") with no workspace, then `claude --version`; ms, the sandbox to delete, and how it was made. */
export async function timedPresetStart(name: string, warm: boolean): Promise<{ ms: number; vm: SmolVM; createdFrom: "boot" | "warm" }> {
  const { startAgent } = await import("../lib/presets/start.ts");
  const started = performance.now();
  const agent = await startAgent("claude", { name, workdir: null, hostEnv: {}, hostHome: "/nonexistent", warm });
  const version = await agent.vm.commands.run(["claude", "--version"]);
  const ms = performance.now() - started;
  if (version.exitCode !== 0) {
    await agent.vm.delete().catch(() => {});
    throw new Error(`claude --version failed: ${version.stderr.trim()}`);
  }
  return { ms, vm: agent.vm, createdFrom: agent.createdFrom };
}
