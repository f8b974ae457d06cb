/**
 * The Firecracker backend's building blocks: everything a Backend implementation needs to run a
 * sandbox on Firecracker (see README.md in this folder for which call serves which lifecycle step).
 */
export { apiCalls, type ApiCall, type ApiMethod, RESOURCE_ID_PATTERN } from "./api-calls.ts";
export type * from "./api-types.ts";
export { FirecrackerApi, FirecrackerApiError, MAX_RESPONSE_BYTES, REQUEST_TIMEOUT_MS, SNAPSHOT_TIMEOUT_MS } from "./api.ts";
export { type FirecrackerDisk, type FirecrackerDiskRequest, prepareFirecrackerDisk } from "./disk.ts";
export { hostPathInJail, JAIL_PATHS, type JailerOptions, type JailerPlan, jailerPlan, type JailLayout } from "./jailer.ts";
export { FIRECRACKER_FILES, type FirecrackerExtras, firecrackerVmSpec, snapshotFilesIn } from "./launch-spec.ts";
export {
  AGENT_VSOCK_PORT, type FirecrackerLaunchPlan, type FirecrackerNetwork, type FirecrackerVmSpec, type JailStaging, MAX_VCPUS,
  NET_IFACE_ID, planBoot, planRestore, type RestoreOptions, ROOT_DRIVE_ID, type SnapshotFiles,
} from "./plan.ts";
export {
  canRunHere, type CanRunOptions, FIRECRACKER_PROGRAM, firecrackerVersion, type FirecrackerProbe, type FirecrackerProcess,
  defaultKvmCheck, JAILER_PROGRAM, type KvmCheck, parseFirecrackerVersion, spawnFirecracker, waitForApi,
} from "./process.ts";
export {
  attachFirecracker, bootFirecracker, cleanupFirecracker, type FirecrackerLaunchOptions, type FirecrackerStatus,
  firecrackerStatus, launchPlan, restoreFirecracker, type RunningFirecracker, saveSnapshot,
} from "./vmm.ts";
export { connectVsock, VsockRefusedError, waitForVsock } from "./vsock.ts";
