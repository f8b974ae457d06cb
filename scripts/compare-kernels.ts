/**
 * Boot time of two guest kernels, measured in one run: the floor image (its /init prints one
 * line and reboots) booted with each kernel in turn, interleaved so both see the same machine
 * load, with the sandbox's own machine, flags and accelerator.
 *
 *   bun scripts/compare-kernels.ts KERNEL_A KERNEL_B [--runs N] [--json]
 *
 * Prints each kernel's median spawn -> init time and the guest's own uptime at init, and B/A.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { accelFor } from "../lib/backends/accel.ts";
import { floorBoot, floorSpec, type FloorVm } from "../bench/floors.ts";
import { parseSandboxConfig } from "../lib/config.ts";
import { FLOOR_INIT_PATH, FLOOR_READY_PREFIX, ensureFloorImage } from "../lib/images/floor.ts";
import { hostGuestArch } from "../lib/kernel/arch.ts";

const args = process.argv.slice(2);
const kernels = args.filter((a) => !a.startsWith("--") && !/^\d+$/.test(a));
const runsAt = args.indexOf("--runs");
const runs = runsAt >= 0 ? Number(args[runsAt + 1]) : 15;
if (kernels.length !== 2 || !Number.isInteger(runs) || runs < 1) {
  console.error("usage: bun scripts/compare-kernels.ts KERNEL_A KERNEL_B [--runs N] [--json]");
  process.exit(2);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const arch = hostGuestArch();
const config = parseSandboxConfig({});
const floor = await ensureFloorImage({ arch });
const scratch = await mkdtemp(join(tmpdir(), "smolvm-kernels-"));
const samples = kernels.map(() => ({ ms: [] as number[], guestMs: [] as number[] }));
let accel = "";
try {
  const vms: FloorVm[] = [];
  for (const kernelPath of kernels) {
    const info = await accelFor({ guestArch: arch, kernelPath });
    accel = info.accel;
    vms.push({ arch, accel: info.accel, vcpus: config.vcpus, memoryMiB: config.memoryMiB, kernelPath });
  }
  for (let run = 0; run < runs; run++) {
    // Alternate which kernel goes first, so neither always boots on the warmer machine.
    const order = run % 2 === 0 ? [0, 1] : [1, 0];
    for (const which of order) {
      const spec = await floorSpec(vms[which]!, join(scratch, `${which}-${run}`), floor.path, { path: FLOOR_INIT_PATH });
      const boot = await floorBoot(spec, FLOOR_READY_PREFIX, 60_000);
      samples[which]!.ms.push(boot.ms);
      if (boot.guestMs !== undefined) samples[which]!.guestMs.push(boot.guestMs);
    }
  }
} finally {
  await rm(scratch, { recursive: true, force: true });
}

const result = {
  accel,
  runs,
  kernels: kernels.map((path, i) => ({ path, medianMs: Math.round(median(samples[i]!.ms)), guestUptimeMs: Math.round(median(samples[i]!.guestMs)) })),
  ratioBtoA: Math.round((median(samples[1]!.ms) / median(samples[0]!.ms)) * 100) / 100,
};
if (args.includes("--json")) console.log(JSON.stringify(result, null, 2));
else {
  for (const k of result.kernels) console.log(`${k.path}: spawn -> init ${k.medianMs} ms (guest uptime at init ${k.guestUptimeMs} ms)`);
  console.log(`B/A: ${result.ratioBtoA} over ${runs} interleaved boots each (accel ${accel})`);
}
