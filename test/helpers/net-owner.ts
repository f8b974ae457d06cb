/**
 * lib/network's owner functions on TAP objects, run inside a network namespace a test made (`ip
 * netns exec NS bun test/helpers/net-owner.ts DIR`): prepare, list what is left, reclaim, and an
 * interface of a sandbox's name that is not the sandbox's. Prints one JSON object of what it saw.
 */
import { spawnSync } from "node:child_process";
import { parsePolicy, networkLeftovers, prepareNetwork, reclaimNetwork } from "../../lib/network/index.ts";
import { listSmolvmTable } from "../../lib/network/nft-run.ts";

const dir = process.argv[2]!;
const sandbox = (id: string, ip: string) => ({ id, mode: "tap" as const, dir, policy: parsePolicy({}), ip, sshPort: null, dnsPort: 5999 });
const error = (thrown: unknown) => ({ code: (thrown as { code?: string }).code, message: (thrown as Error).message, hint: (thrown as { hint?: string }).hint });

const ours = "0123456789ab";
const foreign = "ba9876543210";
const seen: Record<string, unknown> = {};
seen.before = await networkLeftovers({ id: ours, dir });
seen.prepared = (await prepareNetwork(sandbox(ours, "172.16.0.9"))).netdev;
seen.left = await networkLeftovers({ id: ours, dir });
seen.reclaimed = await reclaimNetwork({ id: ours, dir });
seen.after = await networkLeftovers({ id: ours, dir });
seen.tableAfter = await listSmolvmTable();
spawnSync("ip", ["tuntap", "add", "dev", `sm-${foreign}`, "mode", "tap"]);
seen.foreignLeft = await networkLeftovers({ id: foreign, dir });
seen.clash = await prepareNetwork(sandbox(foreign, "172.16.0.10")).then(() => "made", error);
seen.foreignAfterClash = await networkLeftovers({ id: foreign, dir });
seen.foreignReclaimed = await reclaimNetwork({ id: foreign, dir });
seen.foreignStillThere = spawnSync("ip", ["link", "show", `sm-${foreign}`]).status === 0;
console.log(JSON.stringify(seen));
