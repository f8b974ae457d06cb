/**
 * Waiting for a booting sandbox. The supervisor records the outcome in the state store (running,
 * or failed with the reason and the console's last lines), so the waiter polls the row: it works
 * from any process, and a supervisor that dies mid-boot is noticed through its pid.
 */
import { NotFoundError, smolError, type SmolError, TimeoutError } from "../errors.ts";
import { pidAlive } from "../host/pids.ts";
import { StateStore, type VmRecord } from "../state/vms.ts";
import { vmFiles } from "../supervisor/layout.ts";
import { tailOf } from "../util/tail.ts";

const POLL_MS = 5;

export async function waitForReady(vm: VmRecord, supervisorPid: number): Promise<void> {
  // The supervisor enforces the boot timeout itself; this margin only covers a supervisor that
  // hangs before it can report.
  const deadline = Date.now() + vm.config.bootTimeoutMs + 10_000;
  const store = StateStore.open();
  try {
    for (;;) {
      const now = store.findVm(vm.id);
      if (now === undefined) throw new NotFoundError(`Sandbox "${vm.name}" was deleted while it booted`);
      if (now.status === "running" || now.status === "paused") return;
      if (now.status === "failed" || now.status === "stopped") throw bootFailure(now);
      if (!pidAlive(supervisorPid)) {
        const again = store.findVm(vm.id);
        if (again !== undefined && (again.status === "running" || again.status === "paused")) return;
        throw bootFailure(again ?? now, "its supervisor exited during boot");
      }
      if (Date.now() > deadline) {
        throw new TimeoutError(`Sandbox "${vm.name}" did not become ready in ${Math.round(vm.config.bootTimeoutMs / 1000)} s`, {
          hint: `the console log is ${vmFiles(vm.id).consoleLog}`,
        });
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  } finally {
    store.close();
  }
}

function bootFailure(vm: VmRecord, fallback = "it stopped during boot"): SmolError {
  const files = vmFiles(vm.id);
  const supervisorTail = vm.lastError === null ? tailOf(files.supervisorLog, 5) : "";
  return smolError(vm.lastError?.startsWith("TIMEOUT") ? "TIMEOUT" : "BACKEND_UNAVAILABLE",
    `Sandbox "${vm.name}" failed to boot: ${(vm.lastError ?? fallback).replace(/^[A-Z_]+: /, "")}${supervisorTail ? `\n${supervisorTail}` : ""}`, {
    hint: "run with SMOLVM_VERBOSE_BOOT=1 to keep the kernel's boot messages in the console log; `smolvm doctor` checks the host",
  });
}
