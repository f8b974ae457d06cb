/**
 * From one sandbox's VM description to everything it takes to start Firecracker: the argv, the
 * files to create or clear first, what to stage in a jail, and the ordered API calls. Pure, so the
 * whole boot and restore sequence is tested without a VMM (and checked against the API spec).
 *
 * Boot order: logger and metrics first (so every later refusal is in Firecracker's log), then the
 * machine, kernel, root drive, network, vsock and entropy device, then InstanceStart. A restore
 * is logger, metrics and the snapshot load alone: Firecracker refuses a load once anything else
 * is configured, because the devices come from the snapshot.
 *
 * Firecracker has no qcow2: a sandbox's root drive is a raw ext4 file (its own sparse copy of the
 * image in isolated mode, the image itself in shared mode; see disk.ts). It has no user-mode
 * network either: a sandbox gets a TAP device or no network. The guest's serial console is
 * Firecracker's stdout, so it goes to the console log through the spawned process's stdio, not the API.
 */
import { InvalidInputError } from "../../errors.ts";
import { type ApiCall, apiCalls } from "./api-calls.ts";
import type { LogLevel, NetworkOverride, SnapshotLoadParams } from "./api-types.ts";
import { hostPathInJail, JAIL_ID_PATTERN, JAIL_PATHS, type JailerOptions, jailerPlan, type JailLayout } from "./jailer.ts";

/** The guest port the smolvm agent listens on over vsock (guest-agent/main.c). */
export const AGENT_VSOCK_PORT = 1024;
/** Firecracker's limit (machine-config's vcpu_count maximum). */
export const MAX_VCPUS = 32;
/** A Unix socket path is at most 107 bytes on Linux (sun_path is 108 with its NUL). */
const MAX_SOCKET_PATH = 107;
export const ROOT_DRIVE_ID = "rootfs";
export const NET_IFACE_ID = "eth0";

export type FirecrackerNetwork =
  | { mode: "none" }
  | { mode: "tap"; ifname: string; mac?: string; mtu?: number };

export interface FirecrackerVmSpec {
  /** Firecracker's `--id` (and the jail's): letters, digits and dashes. smolvm uses the sandbox id. */
  id: string;
  vcpus: number;
  memoryMiB: number;
  /** An uncompressed vmlinux (x86_64) or Image (aarch64). */
  kernelPath: string;
  /** The whole kernel command line; Firecracker appends its virtio-mmio device entries itself. */
  cmdline: string;
  initrdPath?: string;
  rootDisk: { path: string; readOnly?: boolean };
  network: FirecrackerNetwork;
  /** The guest's CID (from the state store's allocation) and the host side's Unix socket. */
  vsock: { guestCid: number; udsPath: string };
  apiSocketPath: string;
  /** Firecracker's own log and its metrics (JSON lines), both in the sandbox's directory. */
  logPath: string;
  metricsPath: string;
  /** Default "Warning": refusals and guest trouble, without per-request chatter. */
  logLevel?: LogLevel;
  /** Record dirty pages so Diff snapshots can be taken (costs a little on guest memory writes). */
  trackDirtyPages?: boolean;
  /** A virtio-rng device for the guest; default true (QEMU sandboxes have one too). */
  entropy?: boolean;
  /** Boot, then pause at once (InstanceStart cannot start paused). */
  startPaused?: boolean;
}

export interface SnapshotFiles {
  /** The microVM state (devices, vCPUs). */
  statePath: string;
  /** Guest memory. */
  memPath: string;
}

export interface RestoreOptions {
  snapshot: SnapshotFiles;
  /** Resume the vCPUs as part of the load; default false (the caller resumes after reconnecting). */
  resume?: boolean;
  /** Keep tracking dirty pages after the load, for the next Diff snapshot. */
  trackDirtyPages?: boolean;
  /** The TAP device to use instead of the snapshot's (a clone gets its own). */
  tapOverride?: string;
  /** Bind the vsock device at `spec.vsock.udsPath` instead of the path saved in the snapshot. */
  overrideVsockPath?: boolean;
}

/** A file to put in the jail before the jailer starts. */
export interface JailStaging {
  hostPath: string;
  /** Where the same file must appear, as the host sees it (inside the chroot dir). */
  jailedHostPath: string;
  /**
   * Handed to the jail's uid:gid: the sandbox's own files Firecracker writes or must read however
   * their mode is set (its disk, its snapshot, which holds guest memory and stays 0600-able).
   * Shared files (the kernel from the cache, a read-only shared image) keep their owner and mode,
   * and must be readable by that uid.
   */
  ownedByJail: boolean;
}

export interface FirecrackerLaunchPlan {
  /** Which binary `argv` is for. */
  program: "firecracker" | "jailer";
  argv: string[];
  /** The API socket and the vsock socket as the host sees them (inside the jail with the jailer). */
  apiSocketPath: string;
  vsockSocketPath: string;
  logPath: string;
  metricsPath: string;
  /** Files Firecracker opens but does not create: create them empty first. */
  outputFiles: string[];
  /** Sockets Firecracker binds: remove stale ones first, or the bind fails. */
  socketsToClear: string[];
  /** With the jailer: files to hard-link (or copy) into the jail first. */
  stage: JailStaging[];
  calls: ApiCall[];
  jail?: JailLayout;
}

/** Turns host paths into the paths Firecracker sees (identity without a jail). */
interface PathView {
  api: string;
  vsock: string;
  log: string;
  metrics: string;
  kernel: string;
  initrd: string | undefined;
  rootfs: string;
  statePath?: string;
  memPath?: string;
}

/** The plan that boots `spec` from its kernel. */
export function planBoot(spec: FirecrackerVmSpec, options: { jailer?: JailerOptions } = {}): FirecrackerLaunchPlan {
  checkSpec(spec);
  const { plan, view } = basePlan(spec, options.jailer);
  plan.calls.push(
    apiCalls.machineConfig({
      vcpu_count: spec.vcpus,
      mem_size_mib: spec.memoryMiB,
      smt: false,
      track_dirty_pages: spec.trackDirtyPages ?? false,
    }),
    apiCalls.bootSource({
      kernel_image_path: view.kernel,
      boot_args: spec.cmdline,
      ...(view.initrd === undefined ? {} : { initrd_path: view.initrd }),
    }),
    apiCalls.drive({
      drive_id: ROOT_DRIVE_ID,
      path_on_host: view.rootfs,
      is_root_device: true,
      is_read_only: spec.rootDisk.readOnly ?? false,
      // The same trade as QEMU's cache=unsafe: guest flushes reach the host file but are not
      // fsynced; the supervisor syncs the disk once the VM has stopped.
      cache_type: "Unsafe",
    }),
  );
  if (spec.network.mode === "tap") {
    plan.calls.push(apiCalls.networkInterface({
      iface_id: NET_IFACE_ID,
      host_dev_name: spec.network.ifname,
      ...(spec.network.mac === undefined ? {} : { guest_mac: spec.network.mac }),
      ...(spec.network.mtu === undefined ? {} : { mtu: spec.network.mtu }),
    }));
  }
  plan.calls.push(apiCalls.vsock({ guest_cid: spec.vsock.guestCid, uds_path: view.vsock }));
  if (spec.entropy ?? true) plan.calls.push(apiCalls.entropy({}));
  plan.calls.push(apiCalls.action("InstanceStart"));
  if (spec.startPaused) plan.calls.push(apiCalls.pause());
  return plan;
}

/**
 * The plan that restores `spec`'s sandbox from a snapshot. The snapshot brings its own devices:
 * the drive at the same path as when it was taken (restore into the same sandbox directory, or
 * link the disk there), the TAP device unless overridden, and the vsock socket path unless
 * `overrideVsockPath`.
 */
export function planRestore(spec: FirecrackerVmSpec, restore: RestoreOptions, options: { jailer?: JailerOptions } = {}): FirecrackerLaunchPlan {
  checkSpec(spec);
  const { plan, view } = basePlan(spec, options.jailer, restore.snapshot);
  const overrides: NetworkOverride[] = restore.tapOverride === undefined
    ? []
    : [{ iface_id: NET_IFACE_ID, host_dev_name: restore.tapOverride }];
  const load: SnapshotLoadParams = {
    snapshot_path: view.statePath!,
    mem_backend: { backend_type: "File", backend_path: view.memPath! },
    resume_vm: restore.resume ?? false,
    ...(restore.trackDirtyPages === undefined ? {} : { track_dirty_pages: restore.trackDirtyPages }),
    ...(overrides.length === 0 ? {} : { network_overrides: overrides }),
    ...(restore.overrideVsockPath ? { vsock_override: { uds_path: view.vsock } } : {}),
  };
  plan.calls.push(apiCalls.loadSnapshot(load));
  return plan;
}

function basePlan(spec: FirecrackerVmSpec, jailer: JailerOptions | undefined, snapshot?: SnapshotFiles): { plan: FirecrackerLaunchPlan; view: PathView } {
  let view: PathView;
  let plan: FirecrackerLaunchPlan;
  if (jailer === undefined) {
    view = {
      api: spec.apiSocketPath,
      vsock: spec.vsock.udsPath,
      log: spec.logPath,
      metrics: spec.metricsPath,
      kernel: spec.kernelPath,
      initrd: spec.initrdPath,
      rootfs: spec.rootDisk.path,
      ...(snapshot ? { statePath: snapshot.statePath, memPath: snapshot.memPath } : {}),
    };
    plan = {
      program: "firecracker",
      argv: ["--api-sock", spec.apiSocketPath, "--id", spec.id],
      apiSocketPath: spec.apiSocketPath,
      vsockSocketPath: spec.vsock.udsPath,
      logPath: spec.logPath,
      metricsPath: spec.metricsPath,
      outputFiles: [spec.logPath, spec.metricsPath],
      socketsToClear: [spec.apiSocketPath, spec.vsock.udsPath],
      stage: [],
      calls: [],
    };
  } else {
    const { argv, layout } = jailerPlan(spec.id, jailer);
    const host = (jailPath: string) => hostPathInJail(layout, jailPath);
    view = {
      api: JAIL_PATHS.apiSocket,
      vsock: JAIL_PATHS.vsock,
      log: JAIL_PATHS.log,
      metrics: JAIL_PATHS.metrics,
      kernel: JAIL_PATHS.kernel,
      initrd: spec.initrdPath === undefined ? undefined : JAIL_PATHS.initrd,
      rootfs: JAIL_PATHS.rootfs,
      ...(snapshot ? { statePath: JAIL_PATHS.snapshotState, memPath: JAIL_PATHS.snapshotMemory } : {}),
    };
    const stage: JailStaging[] = [
      { hostPath: spec.kernelPath, jailedHostPath: host(JAIL_PATHS.kernel), ownedByJail: false },
      ...(spec.initrdPath === undefined ? [] : [{ hostPath: spec.initrdPath, jailedHostPath: host(JAIL_PATHS.initrd), ownedByJail: false }]),
      { hostPath: spec.rootDisk.path, jailedHostPath: host(JAIL_PATHS.rootfs), ownedByJail: !(spec.rootDisk.readOnly ?? false) },
      ...(snapshot
        ? [
          { hostPath: snapshot.statePath, jailedHostPath: host(JAIL_PATHS.snapshotState), ownedByJail: true },
          { hostPath: snapshot.memPath, jailedHostPath: host(JAIL_PATHS.snapshotMemory), ownedByJail: true },
        ]
        : []),
    ];
    plan = {
      program: "jailer",
      argv,
      apiSocketPath: host(JAIL_PATHS.apiSocket),
      vsockSocketPath: host(JAIL_PATHS.vsock),
      logPath: host(JAIL_PATHS.log),
      metricsPath: host(JAIL_PATHS.metrics),
      outputFiles: [host(JAIL_PATHS.log), host(JAIL_PATHS.metrics)],
      socketsToClear: [host(JAIL_PATHS.apiSocket), host(JAIL_PATHS.vsock)],
      stage,
      calls: [],
      jail: layout,
    };
  }
  for (const socket of [plan.apiSocketPath, plan.vsockSocketPath]) {
    if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) {
      throw new InvalidInputError(`Cannot start Firecracker: the socket path "${socket}" is longer than ${MAX_SOCKET_PATH} bytes`, {
        hint: "use a shorter SMOLVM_HOME (Unix socket paths are limited to 107 bytes)",
      });
    }
  }
  plan.calls.push(
    apiCalls.logger({ log_path: view.log, level: spec.logLevel ?? "Warning", show_level: true, show_log_origin: false }),
    apiCalls.metrics({ metrics_path: view.metrics }),
  );
  return { plan, view };
}

function checkSpec(spec: FirecrackerVmSpec): void {
  const fail = (why: string, hint?: string) => {
    throw new InvalidInputError(`Cannot start sandbox "${spec.id}" with the Firecracker backend: ${why}`, hint === undefined ? {} : { hint });
  };
  if (!JAIL_ID_PATTERN.test(spec.id)) fail(`"${spec.id}" is not a valid Firecracker id`, "use 1 to 64 letters, digits and dashes");
  if (!Number.isInteger(spec.vcpus) || spec.vcpus < 1 || spec.vcpus > MAX_VCPUS) {
    fail(`${spec.vcpus} vCPUs asked for; Firecracker runs 1 to ${MAX_VCPUS}`, `use --cpus 1 to ${MAX_VCPUS}`);
  }
  if (!Number.isInteger(spec.memoryMiB) || spec.memoryMiB < 1) fail(`memory ${spec.memoryMiB} MiB is not a positive integer`);
  if (!Number.isInteger(spec.vsock.guestCid) || spec.vsock.guestCid < 3 || spec.vsock.guestCid > 0xffff_fffe) {
    fail(`vsock CID ${spec.vsock.guestCid} is reserved or out of range (3 to 4294967294)`);
  }
  if (spec.network.mode === "tap") {
    // Linux interface names: at most 15 bytes, no slash or whitespace.
    if (!/^[^\s/:]{1,15}$/.test(spec.network.ifname)) fail(`"${spec.network.ifname}" is not a TAP device name`);
    if (spec.network.mac !== undefined && !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(spec.network.mac)) {
      fail(`"${spec.network.mac}" is not a MAC address`);
    }
  }
  for (const [what, path] of [["kernel", spec.kernelPath], ["root disk", spec.rootDisk.path]] as const) {
    if (path === "") fail(`no ${what} path`);
  }
}
