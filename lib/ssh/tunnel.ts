/**
 * `exposeLocal` over a channel that has no supervisor to hold it (SSH): a tunnel listening on
 * 127.0.0.1 in this process, shaped like the supervisor's port forwards. It ends with
 * `close()`, or when this process exits.
 */
import type { PortForwardInfo } from "../sandbox/ports.ts";
import type { Channel } from "../channels/types.ts";

export async function tunnel(channel: Channel, guestPort: number, hostPort: number): Promise<PortForwardInfo & { heldBy: "process"; close(): Promise<void>; [Symbol.asyncDispose](): Promise<void> }> {
  const exposure = await channel.exposeLocal(guestPort, { hostPort });
  const close = () => exposure.close();
  return {
    hostPort: exposure.hostPort,
    guestPort,
    address: exposure.host,
    connections: 0,
    createdAt: Date.now(),
    heldBy: "process",
    close,
    [Symbol.asyncDispose]: close,
  };
}
