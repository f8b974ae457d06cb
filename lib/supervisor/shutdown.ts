/**
 * A stop, as the supervisor carries it out: the agent is asked to power the guest off and
 * answers once every guest process is gone and `/` is synced and read-only; then the VMM is
 * ended. Apart from the runtime because the guest can freeze in the middle (its last writes hit
 * a full host disk), and then the stop waits for it rather than lose those writes. Once stopped,
 * the disk is made durable.
 */
import { open } from "node:fs/promises";
import type { Vmm } from "../backends/types.ts";
import { logEvent } from "../log.ts";
import { within } from "../util/poll.ts";
import { FrameType, jsonFrame, jsonPayload, type Frame } from "./frames.ts";
import type { Relay, StreamOwner } from "./relay.ts";

export class GuestShutdown {
  /** The shutdown's own stream on the relay (a freeze must not end it). */
  readonly owner: StreamOwner;
  /** True once the agent says the guest is synced; false when it ends the stream otherwise. */
  readonly answer: Promise<boolean>;

  constructor(relay: Relay) {
    let settle!: (synced: boolean) => void;
    this.answer = new Promise((resolve) => (settle = resolve));
    this.owner = {
      deliver: (frame) => settle(frame.type === FrameType.RESULT && isSynced(frame)),
      fail: () => settle(false),
    };
    relay.open(this.owner, jsonFrame(FrameType.OPEN, 1, { op: "shutdown", answer: "synced" }), "shutdown");
  }

  /**
   * Waits for the agent: `synced`; `frozen` when `frozen` resolves first (the guest stopped on a
   * disk error: its writes wait in the VMM, which must not be ended now); `unsynced` when the agent
   * did not say `synced` within 10 s (an image built before this, or a stuck guest).
   */
  async quiesce(vmm: Vmm, frozen: Promise<void>): Promise<"synced" | "unsynced" | "frozen"> {
    const outcome = await within(Promise.race([
      this.answer.then((synced) => (synced ? "synced" as const : "unsynced" as const)),
      vmm.exited.then(() => "unsynced" as const),
      frozen.then(() => "frozen" as const),
    ]), 10_000);
    return outcome ?? "unsynced";
  }
}

/**
 * Ends a stopped guest's VMM. Once the agent said `synced`, nothing in the guest is left to save,
 * so the VMM is told to quit at once rather than left to watch the emulated kernel's reboot path
 * (~50-100 ms under TCG); a guest that did not say so is given 10 s to power off by itself (the
 * VMM ends on its own with -no-reboot).
 */
/**
 * Makes a disk durable once its VM has stopped: QEMU runs it with cache=unsafe, Firecracker with
 * cache_type Unsafe (no host fsync per guest flush). A disk deleted meanwhile has nothing left to
 * keep.
 */
export async function syncDiskFile(path: string): Promise<void> {
  try {
    const handle = await open(path, "r+");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") logEvent("warn", `supervisor: cannot fsync the disk ${path}: ${(error as Error).message}`);
  }
}

export async function endVmm(vmm: Vmm, synced: boolean): Promise<void> {
  if (synced) await vmm.stop().catch(() => vmm.kill());
  const exited = (await within(vmm.exited, synced ? 3_000 : 10_000)) !== undefined;
  if (!exited) {
    await vmm.stop().catch(() => vmm.kill());
    if ((await within(vmm.exited, 3_000)) === undefined) vmm.kill();
  }
}

function isSynced(frame: Frame): boolean {
  try {
    return (jsonPayload(frame) as { synced?: unknown }).synced === true;
  } catch {
    return false;
  }
}
