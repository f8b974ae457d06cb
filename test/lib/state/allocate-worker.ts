// One racer for the concurrency test: opens the shared database and creates one sandbox row.
import { parseVmConfig } from "../../../lib/config.ts";
import { StateStore } from "../../../lib/state/vms.ts";

const store = StateStore.open(process.argv[2]);
const vm = store.createVm({ config: parseVmConfig({}), backend: "qemu", allocate: { ip: true, sshPort: true, cid: true } });
store.close();
process.stdout.write(JSON.stringify({ id: vm.id }));
