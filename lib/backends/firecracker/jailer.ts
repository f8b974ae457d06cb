/**
 * Running Firecracker under its jailer, as a pure function from options to argv and paths.
 *
 * What the jailer does (Firecracker's docs/jailer.md), and what follows for smolvm:
 *
 * - It is started as root with `--id <id> --exec-file <firecracker> --uid <uid> --gid <gid>
 *   --chroot-base-dir <base>` and builds the jail at
 *   `<base>/<basename of exec-file>/<id>/root/` (the "chroot dir"), copies the Firecracker binary
 *   into it, makes `/dev/kvm` and `/dev/net/tun` device nodes inside it, and chowns the chroot dir
 *   and those nodes to uid:gid. It then enters a new mount namespace, pivots its root to the chroot
 *   dir, optionally joins a network namespace (`--netns <path>`), drops to uid:gid and execs
 *   Firecracker with `--id <id>` plus everything after `--` on its own command line.
 * - Firecracker then sees only the chroot: every path in an API body (kernel, drives, vsock
 *   `uds_path`, log and metrics files, snapshot files) is a path *inside the jail*, and the files
 *   must be placed there beforehand: hard links (same filesystem) or copies, owned by uid:gid when
 *   Firecracker writes to them. `jailerPlan` names each of them: `stage` lists what to link where,
 *   and `hostPath` turns a jail path into the path the host sees (the API socket is
 *   `<chroot dir>/api.sock` from outside).
 * - cgroups: with `--cgroup-version 2` (what smolvm uses; v1 is the jailer's default) and at least
 *   one `--cgroup <file>=<value>`, the jailer creates `/sys/fs/cgroup/<parent>/<id>/` (parent:
 *   `--parent-cgroup`, default the exec-file's basename), writes each value to its file there and
 *   moves the process in. Under v1 it creates `/sys/fs/cgroup/<controller>/<parent>/<id>/` for each
 *   controller named by a `--cgroup` file (`cpu.shares` -> controller `cpu`). Without `--cgroup`
 *   no cgroup is made. The jailer never removes what it made: after Firecracker exits, remove
 *   `instanceDir` (the whole `<base>/firecracker/<id>/`) and `rmdir` each of `cgroupDirs`.
 * - Process: without `--daemonize` and `--new-pid-ns` the jailer execs Firecracker in its own
 *   process, so the pid smolvm spawned is Firecracker's and its stdout (the guest's serial
 *   console) is the file smolvm gave it. `--daemonize` would send stdout to /dev/null, so smolvm
 *   never passes it; with `--new-pid-ns` Firecracker gets a new pid namespace and another pid,
 *   which the jailer writes to `<chroot dir>/<exec-file basename>.pid` (`pidFile`).
 *
 * smolvm puts the jail under the sandbox's own directory (`chrootBaseDir = <sandbox dir>/jail`), so
 * deleting a sandbox deletes its jail, and its host paths stay well under the 108-byte limit of a
 * Unix socket path.
 */
import { basename, join } from "node:path";
import { InvalidInputError } from "../../errors.ts";

/** The jailer's rule for `--id`; smolvm's sandbox ids (12 hex digits) always pass. */
export const JAIL_ID_PATTERN = /^[A-Za-z0-9-]{1,64}$/;

export interface JailerOptions {
  /** The jailer binary. */
  jailerBinary: string;
  /** The Firecracker binary the jailer copies into the jail and execs. */
  firecrackerBinary: string;
  uid: number;
  gid: number;
  /** Where jails are built: smolvm uses `<sandbox dir>/jail`. */
  chrootBaseDir: string;
  /** Default 2. */
  cgroupVersion?: 1 | 2;
  /** The cgroup the per-VM cgroup is made under; default the exec-file's basename. */
  parentCgroup?: string;
  /** cgroup file -> value, e.g. `{ "memory.max": "536870912", "cpu.max": "100000 100000" }`. */
  cgroups?: Record<string, string>;
  /** A network namespace to join, e.g. `/var/run/netns/smolvm-<id>`. */
  netns?: string;
  /** Run Firecracker in a new pid namespace (its pid is then read from `pidFile`). */
  newPidNs?: boolean;
  /** Resource limits: `fsize` (bytes) and `no-file` (descriptors). */
  resourceLimits?: { fsize?: number; "no-file"?: number };
}

/** Fixed names inside the jail for what smolvm hands Firecracker. */
export const JAIL_PATHS = {
  apiSocket: "/api.sock",
  kernel: "/vmlinux",
  initrd: "/initrd",
  rootfs: "/rootfs.ext4",
  vsock: "/vsock.sock",
  log: "/firecracker.log",
  metrics: "/firecracker.metrics",
  snapshotState: "/snapshot/vmstate",
  snapshotMemory: "/snapshot/memory",
} as const;

export interface JailLayout {
  id: string;
  /** `<base>/<exec name>/<id>`: remove it whole after Firecracker exits. */
  instanceDir: string;
  /** `<instanceDir>/root`: what Firecracker sees as `/`. */
  chrootDir: string;
  /** Directories the jailer creates under /sys/fs/cgroup; rmdir them after exit. */
  cgroupDirs: string[];
  /** With `newPidNs`: where the jailer writes Firecracker's pid. */
  pidFile?: string;
  uid: number;
  gid: number;
}

export interface JailerPlan {
  argv: string[];
  layout: JailLayout;
}

/** The jailer's argv (without the program) and the layout it will build. */
export function jailerPlan(id: string, options: JailerOptions): JailerPlan {
  if (!JAIL_ID_PATTERN.test(id)) {
    throw new InvalidInputError(`Cannot run Firecracker under the jailer: "${id}" is not a valid jail id`, {
      hint: "use 1 to 64 letters, digits and dashes",
    });
  }
  for (const [what, value] of [["uid", options.uid], ["gid", options.gid]] as const) {
    if (!Number.isInteger(value) || value < 0 || value > 0xffff_fffe) {
      throw new InvalidInputError(`Cannot run Firecracker under the jailer: ${what} ${value} is not a valid id`);
    }
  }
  const execName = basename(options.firecrackerBinary);
  const version = options.cgroupVersion ?? 2;
  const parent = options.parentCgroup ?? execName;
  if (/(^|\/)\.\.(\/|$)/.test(parent) || parent.startsWith("/")) {
    throw new InvalidInputError(`Cannot run Firecracker under the jailer: parent cgroup "${parent}" must be a relative path without ".."`);
  }
  const cgroups = Object.entries(options.cgroups ?? {});
  for (const [file, value] of cgroups) {
    if (!/^[a-z0-9_]+\.[a-z0-9_.]+$/.test(file) || /[\n=]/.test(value)) {
      throw new InvalidInputError(`Cannot run Firecracker under the jailer: "${file}=${value}" is not a cgroup setting`, {
        hint: 'give a cgroup file and its value, e.g. "memory.max" and "536870912"',
      });
    }
  }

  const argv = [
    "--id", id,
    "--exec-file", options.firecrackerBinary,
    "--uid", String(options.uid),
    "--gid", String(options.gid),
    "--chroot-base-dir", options.chrootBaseDir,
    "--cgroup-version", String(version),
  ];
  if (options.parentCgroup !== undefined) argv.push("--parent-cgroup", options.parentCgroup);
  for (const [file, value] of cgroups) argv.push("--cgroup", `${file}=${value}`);
  if (options.netns !== undefined) argv.push("--netns", options.netns);
  if (options.newPidNs) argv.push("--new-pid-ns");
  for (const [name, value] of Object.entries(options.resourceLimits ?? {})) argv.push("--resource-limit", `${name}=${value}`);
  argv.push("--", "--api-sock", JAIL_PATHS.apiSocket);

  const instanceDir = join(options.chrootBaseDir, execName, id);
  const chrootDir = join(instanceDir, "root");
  const controllers = [...new Set(cgroups.map(([file]) => file.slice(0, file.indexOf("."))))];
  const cgroupDirs = cgroups.length === 0
    ? []
    : version === 2
      ? [join("/sys/fs/cgroup", parent, id)]
      : controllers.map((controller) => join("/sys/fs/cgroup", controller, parent, id));
  return {
    argv,
    layout: {
      id,
      instanceDir,
      chrootDir,
      cgroupDirs,
      ...(options.newPidNs ? { pidFile: join(chrootDir, `${execName}.pid`) } : {}),
      uid: options.uid,
      gid: options.gid,
    },
  };
}

/** The host's path for a path inside the jail. */
export function hostPathInJail(layout: JailLayout, jailPath: string): string {
  if (!jailPath.startsWith("/") || jailPath.split("/").includes("..")) {
    throw new InvalidInputError(`Cannot place "${jailPath}" in the jail: jail paths are absolute and have no ".."`);
  }
  return join(layout.chrootDir, jailPath);
}
