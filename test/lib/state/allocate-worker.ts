// One racer for the concurrency test: opens the shared database and creates one sandbox row.
import { parseSandboxConfig } from "../../../lib/config.ts";
import { StateStore } from "../../../lib/state/sandboxes.ts";

const store = StateStore.open(process.argv[2]);
const vm = store.create({ config: parseSandboxConfig({}), backend: "qemu", allocate: { ip: true, sshPort: true, cid: true } });
store.close();
process.stdout.write(JSON.stringify({ id: vm.id }));
