/**
 * The network phases of `smolvm bench`: in a test network of the run's own (netlab.ts), one
 * sandbox per network mode downloads a file from the lab's "internet", right after the host
 * namespace itself downloads the same file from the same server (the floor, paired sample by
 * sample); and creates per mode, each right after a create without a network, for what a mode
 * adds to a create. Needs root (namespaces); otherwise the phases say why they are missing.
 */
import { spawn } from "node:child_process";
import { mkdir, rm, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CommandFailedError } from "../lib/errors.ts";
import { selfCommand } from "../lib/host/self.ts";
import { which } from "../lib/host/process.ts";
import type { Collector } from "./_collect.ts";
import { createNetLab, NETLAB, netLabUnavailable, type NetLab } from "./netlab.ts";

export const NET_MODES = ["user", "tap"] as const;
export const NET_PHASES = [
  ...NET_MODES.map((mode) => `net.download.${mode}`), "floor.net.download",
  ...NET_MODES.map((mode) => `net.create.${mode}`), "net.create.none",
];

export interface NetBenchOptions {
  image: string;
  runs: number;
  downloadMiB: number;
  scratchDir: string;
  tag: string;
  step: (text: string, fraction?: number) => void;
  signal?: AbortSignal;
}

interface Output {
  code: number | null;
  stdout: string;
  stderr: string;
}

function exec(argv: readonly string[], timeoutMs = 300_000): Promise<Output> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk));
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** smolvm itself, run in the lab's host namespace. */
function smolvm(lab: NetLab, args: string[]): Promise<Output> {
  const self = selfCommand(args);
  return exec(lab.inside("host", [self.file, ...self.args]));
}

async function mustSmolvm(lab: NetLab, args: string[]): Promise<Output> {
  const result = await smolvm(lab, args);
  if (result.code !== 0) throw new CommandFailedError(`smolvm ${args.join(" ")}: ${(result.stderr || result.stdout).trim().split("\n")[0]}`);
  return result;
}

/**
 * One download in the guest, printing bytes per second: curl's own measure where the image has
 * curl, else busybox wget timed by the guest's uptime clock (10 ms steps).
 */
const GUEST_DOWNLOAD = `if command -v curl >/dev/null 2>&1; then exec curl -s -o /dev/null -w '%{speed_download}' "$1"; fi
s=$(cut -d' ' -f1 /proc/uptime); wget -q -O /dev/null "$1" || exit 1; e=$(cut -d' ' -f1 /proc/uptime)
awk -v b="$2" -v s="$s" -v e="$e" 'BEGIN { if (e <= s) e = s + 0.01; printf "%.0f", b / (e - s) }'`;

/** A download's bytes per second (curl's measure, or the guest script's), in MB/s (10^6 bytes per second). */
function curlMBps(result: Output, where: string): number {
  const bytesPerSecond = Number(result.stdout.trim());
  if (result.code !== 0 || !Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0) {
    throw new CommandFailedError(`the download ${where} failed: ${(result.stderr || result.stdout).trim().slice(0, 200)}`);
  }
  return bytesPerSecond / 1e6;
}

async function waitForRowsGone(prefix: string, timeoutMs: number): Promise<void> {
  const { withStore } = await import("../lib/state/sandboxes.ts");
  const deadline = Date.now() + timeoutMs;
  while (withStore((store) => store.list()).some((vm) => vm.name.startsWith(prefix)) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function measureNetwork(c: Collector, o: NetBenchOptions): Promise<void> {
  const why = netLabUnavailable() ?? (which("busybox") === undefined ? '"busybox" (the lab\'s web server) is not installed' : undefined);
  if (why !== undefined) {
    c.unavailable(NET_PHASES, why);
    return;
  }
  const lab = createNetLab();
  const cleanups: (() => Promise<void>)[] = [];
  try {
    const www = join(o.scratchDir, "www");
    await mkdir(www, { recursive: true });
    const file = join(www, "blob");
    await writeFile(file, "");
    await truncate(file, o.downloadMiB * 2 ** 20);
    lab.start("inet", [which("busybox")!, "httpd", "-f", "-p", `${NETLAB.server}:80`, "-h", www]);
    const url = `http://${NETLAB.server}/blob`;
    const hostDownload = async () =>
      curlMBps(await exec(lab.inside("host", ["curl", "-s", "-o", "/dev/null", "-w", "%{speed_download}", url])), "from the host");
    const deadline = Date.now() + 10_000;
    while (await hostDownload().then(() => false, () => true)) {
      if (Date.now() > deadline) throw new CommandFailedError("the lab's web server did not start");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }

    const live = new Set<string>();
    const create = async (network: string, i: number): Promise<{ name: string; ms: number }> => {
      const name = `bench-${o.tag}-net-${network}-${i}`;
      live.add(name);
      const started = performance.now();
      await mustSmolvm(lab, ["create", "--name", name, "--image", o.image, "--network", network]);
      return { name, ms: performance.now() - started };
    };
    const remove = async (name: string) => {
      await smolvm(lab, ["delete", name]);
      live.delete(name);
    };
    cleanups.push(async () => {
      for (const name of live) await remove(name).catch(() => {});
    });

    for (const mode of NET_MODES) {
      await c.attempt([`net.download.${mode}`, `net.create.${mode}`, "net.create.none"], async () => {
        const creates = Math.max(1, Math.min(o.runs, 3));
        let sandbox = "";
        for (let i = 0; i < creates; i++) {
          o.signal?.throwIfAborted();
          o.step(`network: create with --network none, then ${mode}`, i / creates);
          const none = await create("none", i);
          await remove(none.name);
          const made = await create(mode, i);
          c.add("net.create.none", none.ms);
          c.add(`net.create.${mode}`, made.ms);
          c.pair(`net-create-${mode}/none`, made.ms, none.ms);
          if (i < creates - 1) await remove(made.name);
          else sandbox = made.name;
        }
        for (let i = 0; i < o.runs; i++) {
          o.signal?.throwIfAborted();
          o.step(`network: download over ${mode} and from the host`, i / o.runs);
          const floor = await hostDownload();
          const guest = curlMBps(await smolvm(lab, ["exec", sandbox, "--", "sh", "-c", GUEST_DOWNLOAD, "sh", url, String(o.downloadMiB * 2 ** 20)]), `in the ${mode} sandbox`);
          c.add("floor.net.download", floor);
          c.add(`net.download.${mode}`, guest);
          c.pair(`net-download-${mode}/host`, guest, floor);
        }
        await remove(sandbox);
      });
      c.report(`net.download.${mode}`);
    }
    c.report("floor.net.download");
    for (const id of ["floor.net.download", ...NET_MODES.map((mode) => `net.download.${mode}`)]) {
      c.note(id, `${o.downloadMiB} MiB over HTTP (curl) from busybox httpd in the run's own "internet" namespace; host samples taken right before each guest one`);
    }
  } finally {
    for (const cleanup of cleanups) await cleanup();
    // Deletes finish behind the caller: the supervisors remove their networks before their rows.
    await waitForRowsGone(`bench-${o.tag}-net-`, 20_000);
    lab.close();
    await rm(join(o.scratchDir, "www"), { recursive: true, force: true });
  }
}
