/**
 * The bodies smolvm sends to and reads from Firecracker's API, named as the definitions in
 * firecracker-api.yaml (Swagger 2.0, Firecracker 1.17.0-dev). Only the definitions smolvm uses
 * are written out; field names are Firecracker's own (snake_case), so a body is sent as is.
 *
 * These types are a convenience for the compiler. The contract is the YAML: the conformance test
 * validates every body the client sends against the definitions generated from it.
 */

export interface MachineConfiguration {
  vcpu_count: number;
  mem_size_mib: number;
  smt?: boolean;
  /** Needed for Diff snapshots: the VMM then records which guest pages were written. */
  track_dirty_pages?: boolean;
  huge_pages?: "None" | "Transparent" | "2M";
}

export interface BootSource {
  kernel_image_path: string;
  boot_args?: string;
  initrd_path?: string;
}

export interface TokenBucket {
  size: number;
  refill_time: number;
  one_time_burst?: number;
}

export interface RateLimiter {
  bandwidth?: TokenBucket;
  ops?: TokenBucket;
}

export interface Drive {
  drive_id: string;
  is_root_device: boolean;
  path_on_host?: string;
  is_read_only?: boolean;
  cache_type?: "Unsafe" | "Writeback";
  io_engine?: "Sync" | "Async";
  partuuid?: string;
  rate_limiter?: RateLimiter;
}

export interface NetworkInterface {
  iface_id: string;
  host_dev_name: string;
  guest_mac?: string;
  mtu?: number;
  rx_rate_limiter?: RateLimiter;
  tx_rate_limiter?: RateLimiter;
}

export interface Vsock {
  guest_cid: number;
  uds_path: string;
}

export type LogLevel = "Error" | "Warning" | "Info" | "Debug" | "Trace" | "Off";

export interface Logger {
  log_path?: string;
  level?: LogLevel;
  show_level?: boolean;
  show_log_origin?: boolean;
  module?: string;
}

export interface Metrics {
  metrics_path: string;
  emit_id?: boolean;
  properties?: Record<string, string>;
}

export interface EntropyDevice {
  rate_limiter?: RateLimiter;
}

export type ActionType = "InstanceStart" | "SendCtrlAltDel" | "FlushMetrics";

export interface InstanceActionInfo {
  action_type: ActionType;
}

export interface VmState {
  state: "Paused" | "Resumed";
}

export type SnapshotType = "Full" | "Diff";

export interface SnapshotCreateParams {
  snapshot_path: string;
  mem_file_path: string;
  snapshot_type?: SnapshotType;
}

export interface MemoryBackend {
  backend_type: "File" | "Uffd";
  backend_path: string;
}

export interface NetworkOverride {
  iface_id: string;
  host_dev_name: string;
}

export interface SnapshotLoadParams {
  snapshot_path: string;
  mem_backend?: MemoryBackend;
  track_dirty_pages?: boolean;
  resume_vm?: boolean;
  network_overrides?: NetworkOverride[];
  vsock_override?: { uds_path: string };
  clock_realtime?: boolean;
}

/** `GET /`: `state` is "Not started" before InstanceStart or a snapshot load. */
export interface InstanceInfo {
  app_name: string;
  id: string;
  state: "Not started" | "Running" | "Paused";
  vmm_version: string;
}

export interface FirecrackerVersion {
  firecracker_version: string;
}

/** The body of every error answer. */
export interface ApiFault {
  fault_message?: string;
}
