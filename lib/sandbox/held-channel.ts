/**
 * The channel one SDK handle holds: the session a create or start learned readiness on, else the
 * one the policy opens on first use (lib/sandbox/connection.ts, loaded only then), opened again
 * if it drops. A handle's first command, when nothing is open yet, rides with the opening HELLO.
 */
import type { AgentClient } from "../agent/client.ts";
import type { ExecHandle, ExecSpec } from "../agent/types.ts";
import type { Channel, CommChannel } from "../channels/types.ts";
import { SmolError } from "../errors.ts";
import type { SandboxRecord } from "../state/record.ts";

export class HeldChannel {
  private channel: Channel | undefined;

  constructor(
    /** The sandbox as the handle knows it now, and the channel it was asked to use. */
    private readonly target: () => { record: SandboxRecord; commChannel: CommChannel | undefined },
    /** The session a create or start learned readiness on, kept as the first connection. */
    private ready: AgentClient | undefined,
  ) {}

  /** The open channel, or the one the policy picks (lib/channels/policy.ts), opened now. */
  async get(): Promise<Channel> {
    if (this.channel !== undefined && !this.channel.isClosed) return this.channel;
    const ready = this.ready;
    this.ready = undefined;
    const { record, commChannel } = this.target();
    if (ready !== undefined && !ready.isClosed && commChannel !== "ssh" && record.channel !== "ssh") {
      // A create or start just learned readiness on this session: it is the agent channel.
      const { AgentChannel } = await import("../channels/agent.ts");
      return (this.channel = new AgentChannel(ready));
    }
    await ready?.close();
    const { openChannel } = await import("./connection.ts");
    return (this.channel = (await openChannel(record, commChannel)).channel);
  }

  /**
   * Opens the channel with `spec` sent right behind the agent's HELLO (pipelined): the guest
   * starts it a round trip, and this process's handling of the answer, sooner. That is most of
   * what a one-command process (`smolvm exec`) can still save. Undefined, with nothing sent or
   * nothing that will run, when a channel is open already, when the command has stdin (its
   * credit comes with the answer), or when it did not ride the channel the policy chose (SSH, or
   * a supervisor older than pipelining, which refuses what comes before its answer): the caller
   * then sends it on `get()`'s channel as usual.
   */
  async openWith(spec: ExecSpec): Promise<ExecHandle | undefined> {
    if ((this.channel !== undefined && !this.channel.isClosed) || this.ready !== undefined || spec.stdin) return undefined;
    const { record, commChannel } = this.target();
    let sent: { client: AgentClient; handle: Promise<ExecHandle> } | undefined;
    const { openChannel } = await import("./connection.ts");
    const { channel } = await openChannel(record, commChannel, (client) => {
      const handle = client.exec(spec);
      // Awaited below when it rode the chosen channel; otherwise its failure is that channel's.
      handle.catch(() => {});
      sent = { client, handle };
    });
    this.channel = channel;
    if (sent === undefined || this.agentSession() !== sent.client) return undefined;
    return sent.handle.catch((error: unknown) => {
      if (error instanceof SmolError && error.details?.agentCode === "HELLO_REQUIRED") return undefined;
      throw error;
    });
  }

  /** The agent session of the open channel, when that channel is the agent's. */
  agentSession(): AgentClient | undefined {
    const channel = this.channel;
    return channel !== undefined && !channel.isClosed && channel.kind === "agent" ? (channel as Channel & { client: AgentClient }).client : undefined;
  }

  /** Lets go of the channel (the sandbox stopped, restarted or went); `ready` is the next one, if known. */
  release(ready?: AgentClient): void {
    void this.channel?.close();
    this.channel = undefined;
    void this.ready?.close();
    this.ready = ready;
  }
}
