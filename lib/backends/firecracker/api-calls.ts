/**
 * Every Firecracker API request smolvm makes, as plain data: method, path, body and what it is
 * for (the failed action in an error message). The client sends these; the launch planner returns
 * lists of them, so the order and bodies of a whole boot are tested without a VMM.
 */
import { InvalidInputError } from "../../errors.ts";
import type {
  ActionType, BootSource, Drive, EntropyDevice, Logger, MachineConfiguration, Metrics, NetworkInterface,
  SnapshotCreateParams, SnapshotLoadParams, Vsock,
} from "./api-types.ts";

export type ApiMethod = "GET" | "PUT" | "PATCH";

export interface ApiCall {
  method: ApiMethod;
  /** The request path, path parameters already encoded. */
  path: string;
  body?: object;
  /** The action, for error messages: `Cannot <purpose>: ...`. */
  purpose: string;
}

/**
 * Firecracker accepts resource ids (drive_id, iface_id) of ASCII letters, digits and underscores,
 * at most 64 of them. Checked here so a bad id is a clear error before anything starts.
 */
export const RESOURCE_ID_PATTERN = /^[A-Za-z0-9_]{1,64}$/;

function resourceId(id: string, what: string): string {
  if (!RESOURCE_ID_PATTERN.test(id)) {
    throw new InvalidInputError(`Cannot configure Firecracker's ${what} "${id}": not a valid id`, {
      hint: "use 1 to 64 letters, digits and underscores",
    });
  }
  return id;
}

export const apiCalls = {
  describeInstance: (): ApiCall => ({ method: "GET", path: "/", purpose: "describe the Firecracker instance" }),
  version: (): ApiCall => ({ method: "GET", path: "/version", purpose: "read the Firecracker version" }),
  machineConfig: (body: MachineConfiguration): ApiCall =>
    ({ method: "PUT", path: "/machine-config", body, purpose: "configure the machine (vCPUs, memory)" }),
  getMachineConfig: (): ApiCall => ({ method: "GET", path: "/machine-config", purpose: "read the machine configuration" }),
  bootSource: (body: BootSource): ApiCall =>
    ({ method: "PUT", path: "/boot-source", body, purpose: "set the kernel and its command line" }),
  drive: (body: Drive): ApiCall => ({
    method: "PUT",
    path: `/drives/${resourceId(body.drive_id, "drive")}`,
    body,
    purpose: `attach the drive "${body.drive_id}"`,
  }),
  networkInterface: (body: NetworkInterface): ApiCall => ({
    method: "PUT",
    path: `/network-interfaces/${resourceId(body.iface_id, "network interface")}`,
    body,
    purpose: `attach the network interface "${body.iface_id}" (TAP "${body.host_dev_name}")`,
  }),
  vsock: (body: Vsock): ApiCall => ({ method: "PUT", path: "/vsock", body, purpose: "add the vsock device" }),
  entropy: (body: EntropyDevice = {}): ApiCall =>
    ({ method: "PUT", path: "/entropy", body, purpose: "add the entropy device" }),
  logger: (body: Logger): ApiCall => ({ method: "PUT", path: "/logger", body, purpose: "set up Firecracker's log" }),
  metrics: (body: Metrics): ApiCall =>
    ({ method: "PUT", path: "/metrics", body, purpose: "set up Firecracker's metrics" }),
  action: (action_type: ActionType): ApiCall => ({
    method: "PUT",
    path: "/actions",
    body: { action_type },
    purpose: ACTION_PURPOSE[action_type],
  }),
  pause: (): ApiCall => ({ method: "PATCH", path: "/vm", body: { state: "Paused" }, purpose: "pause the VM" }),
  resume: (): ApiCall => ({ method: "PATCH", path: "/vm", body: { state: "Resumed" }, purpose: "resume the VM" }),
  createSnapshot: (body: SnapshotCreateParams): ApiCall => ({
    method: "PUT",
    path: "/snapshot/create",
    body,
    purpose: `save a ${(body.snapshot_type ?? "Full").toLowerCase()} snapshot to "${body.snapshot_path}"`,
  }),
  loadSnapshot: (body: SnapshotLoadParams): ApiCall =>
    ({ method: "PUT", path: "/snapshot/load", body, purpose: `restore the snapshot "${body.snapshot_path}"` }),
  vmConfig: (): ApiCall => ({ method: "GET", path: "/vm/config", purpose: "read the VM configuration" }),
};

const ACTION_PURPOSE: Record<ActionType, string> = {
  InstanceStart: "start the VM",
  SendCtrlAltDel: "send Ctrl+Alt+Del to the guest",
  FlushMetrics: "flush Firecracker's metrics",
};
