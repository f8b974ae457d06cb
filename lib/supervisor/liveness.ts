/**
 * Whether a silent guest agent is busy or gone, judged by the supervisor for every client at
 * once. A fixed deadline fails commands on a loaded host that would have answered; no deadline
 * lets a stuck agent hold its callers forever. So, only while streams wait on it and it has said
 * nothing for a while, the supervisor looks closer:
 *
 * - the VMM process stopped by a signal (SIGSTOP): nothing in the guest can answer; said at once;
 * - the VMM paused the guest itself (a disk write failed on the host): said at once;
 * - otherwise the agent is pinged. It is alive as soon as it sends anything. An unanswered ping
 *   is given `hungMs` while the guest idles, and `busyHungMs` while its vCPUs keep the VMM busy
 *   (a guest under a fork bomb is slow, not dead): then the waiting streams fail with the reason.
 */
import type { Vmm, VmmStatus } from "../backends/types.ts";
import { processStat } from "../host/pids.ts";
import { within } from "../util/poll.ts";
import { FrameType, jsonFrame, type Frame } from "./frames.ts";
import type { Relay, StreamOwner } from "./relay.ts";

export interface LivenessOptions {
  /** Silence, with streams waiting, before the supervisor looks closer (default 3 s). */
  quietMs?: number;
  /** How long an unanswered ping may take while the guest idles (default 30 s). */
  hungMs?: number;
  /** How long while the guest's vCPUs are busy (default 5 min). */
  busyHungMs?: number;
}

export type Verdict =
  | { kind: "vmm-stopped"; pid: number }
  | { kind: "vmm-paused"; status: VmmStatus }
  | { kind: "hung"; silentMs: number; busy: boolean };

const DEFAULTS = { quietMs: 3_000, hungMs: 30_000, busyHungMs: 300_000 };
/** A VMM using more CPU than this share of the wait is running a busy guest. */
const BUSY_SHARE = 0.5;

export class AgentLiveness {
  private readonly options: Required<LivenessOptions>;
  private timer: ReturnType<typeof setInterval> | undefined;
  private looking = false;
  private ping: { sentAt: number; cpuMs: number | undefined } | undefined;
  private pingId = 0;
  private readonly owner: StreamOwner;

  constructor(
    private readonly relay: Relay,
    private readonly vmm: Pick<Vmm, "pid" | "describe">,
    private readonly judge: (verdict: Verdict) => void,
    options: LivenessOptions = {},
  ) {
    this.options = { ...DEFAULTS, ...options };
    this.owner = {
      deliver: (frame: Frame) => {
        if (frame.type === FrameType.RESULT || frame.type === FrameType.ERROR) this.ping = undefined;
      },
      fail: () => (this.ping = undefined),
    };
  }

  start(): void {
    this.timer ??= setInterval(() => void this.look(), Math.max(50, Math.floor(this.options.quietMs / 3)));
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  private async look(): Promise<void> {
    if (this.looking) return;
    this.looking = true;
    try {
      await this.lookOnce();
    } finally {
      this.looking = false;
    }
  }

  private async lookOnce(): Promise<void> {
    const silentMs = this.relay.silentMs();
    // The judge ends the streams it was asked about, so a verdict is given again only for
    // streams opened after it.
    if (silentMs < this.options.quietMs || this.relay.waiting(this.owner) === 0) return;
    const stat = processStat(this.vmm.pid);
    if (stat?.state === "T" || stat?.state === "t") return this.judge({ kind: "vmm-stopped", pid: this.vmm.pid });
    const status = await within(this.vmm.describe().catch(() => undefined), 2_000);
    if (status !== undefined && status.state !== "running") return this.judge({ kind: "vmm-paused", status });
    if (this.ping === undefined) {
      this.ping = { sentAt: performance.now(), cpuMs: stat?.cpuMs };
      this.relay.open(this.owner, jsonFrame(FrameType.OPEN, ++this.pingId, { op: "ping" }), "ping");
      return;
    }
    const waited = performance.now() - this.ping.sentAt;
    const busy = stat !== undefined && this.ping.cpuMs !== undefined && stat.cpuMs - this.ping.cpuMs > waited * BUSY_SHARE;
    if (waited > (busy ? this.options.busyHungMs : this.options.hungMs)) {
      this.ping = undefined;
      this.judge({ kind: "hung", silentMs, busy });
    }
  }
}

/** What the streams a verdict ends are told: the code, what is wrong, and what to do. */
export function verdictError(verdict: Verdict, name: string): { code: string; message: string; hint: string } {
  switch (verdict.kind) {
    case "vmm-stopped":
      return {
        code: "AGENT_UNAVAILABLE",
        message: `Sandbox "${name}" does not answer: its VM's process (pid ${verdict.pid}) is stopped by a signal, so nothing in the guest runs`,
        hint: `\`kill -CONT ${verdict.pid}\` lets it go on; \`smolvm stop ${name}\` ends it`,
      };
    case "vmm-paused":
      return { code: "NOT_RUNNING", message: `Sandbox "${name}" does not answer: its VMM paused it (${verdict.status.detail})`, hint: `\`smolvm resume ${name}\` lets it go on` };
    case "hung":
      return {
        code: "AGENT_UNAVAILABLE",
        message: `The guest agent of sandbox "${name}" has not answered for ${Math.round(verdict.silentMs / 1000)} s, a ping included, although its VM runs${verdict.busy ? " (busy)" : ""}`,
        hint: `the guest may be overloaded or its agent stuck: \`smolvm stop ${name}\` then \`smolvm start ${name}\` restarts it`,
      };
  }
}
