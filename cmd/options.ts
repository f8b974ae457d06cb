/** Option parsers and option groups shared by several commands. */
import { InvalidArgumentError, Option, type Command } from "@commander-js/extra-typings";
import { ACCELS, BACKENDS, CHANNELS, DISK_MODES, NETWORK_MODES, type AccelChoice, type BackendChoice, type ChannelChoice, type DiskMode, type NetworkMode } from "../lib/choices.ts";

export function integer(name: string): (value: string) => number {
  return (value: string) => {
    if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`${name} must be a whole number, got "${value}".`);
    return Number(value);
  };
}

/** `8G`, `8192M` or a bare number of GiB, in MiB. */
export function diskSize(value: string): number {
  const match = /^(\d+)\s*([MmGg]i?[Bb]?)?$/.exec(value.trim());
  if (!match) throw new InvalidArgumentError(`--disk-size takes a size such as 8G or 4096M, got "${value}".`);
  const n = Number(match[1]);
  return match[2]?.toLowerCase().startsWith("m") ? n : n * 1024;
}

/** `--env K=V`, repeatable. */
export function envPair(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const at = value.indexOf("=");
  if (at <= 0) throw new InvalidArgumentError(`expected NAME=VALUE, got "${value}".`);
  return { ...previous, [value.slice(0, at)]: value.slice(at + 1) };
}

/** The sandbox-shape options of `create` and `run`. */
export function withSandboxOptions<Args extends unknown[], Opts extends {}>(command: Command<Args, Opts>) {
  return command
    .option("--image <name>", "root image (base, debian)")
    .option("--cpus <n>", "virtual CPUs", integer("--cpus"))
    .option("--memory <mib>", "memory in MiB", integer("--memory"))
    .addOption(new Option("--disk-mode <mode>", "isolated: a private copy-on-write disk; shared: write to the image").choices(DISK_MODES))
    .option("--boot-timeout <seconds>", "give up on a boot after this long", integer("--boot-timeout"))
    .option("--kernel <path>", "boot this kernel instead of the cached build")
    .option("--rootfs <path>", "boot this ext4 root filesystem instead of an image")
    .option("--boot-args <args>", "extra kernel command-line arguments")
    .addOption(new Option("--network <mode>", "user: the internet and nothing of the host (the default on Linux, no root); tap: a TAP interface (root); none (the default on macOS)").choices(NETWORK_MODES))
    .option("--allow-host <host>", "let the sandbox reach only these (repeatable): a DNS name, *.domain, an address, a CIDR range, or \"internet\"", collect)
    .addOption(backendOption())
    .option("--jailer", "run Firecracker under its jailer (a chroot and a user of the sandbox's own; root only; implies --backend firecracker); default SMOLVM_JAILER=1")
    .addOption(accelOption());
}

/** A repeatable option's values, in order. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** `--backend`: the VMM that runs the sandbox. */
export function backendOption() {
  return new Option("--backend <backend>",
    "the VMM: qemu, firecracker (Linux with KVM), or auto; default SMOLVM_BACKEND, else auto (Firecracker where it can run the sandbox, else QEMU)")
    .choices(BACKENDS);
}

/** `--accel`: hardware acceleration, or software emulation, for the boot. */
export function accelOption() {
  return new Option("--accel <accel>", "auto (KVM once proven, HVF on macOS, else software emulation), kvm, hvf or tcg; default SMOLVM_ACCEL, else auto")
    .choices(ACCELS);
}

export interface SandboxOptionValues {
  image?: string;
  cpus?: number;
  memory?: number;
  diskMode?: DiskMode;
  bootTimeout?: number;
  kernel?: string;
  rootfs?: string;
  bootArgs?: string;
  network?: NetworkMode;
  allowHost?: string[];
  accel?: AccelChoice;
  backend?: BackendChoice;
  jailer?: boolean;
}

export function sandboxConfigFrom(options: SandboxOptionValues): Record<string, unknown> {
  const config: Record<string, unknown> = {};
  if (options.image !== undefined) config.image = options.image;
  if (options.cpus !== undefined) config.vcpus = options.cpus;
  if (options.memory !== undefined) config.memoryMiB = options.memory;
  if (options.diskMode !== undefined) config.diskMode = options.diskMode;
  if (options.bootTimeout !== undefined) config.bootTimeoutMs = options.bootTimeout * 1000;
  if (options.kernel !== undefined) config.kernelPath = options.kernel;
  if (options.rootfs !== undefined) config.rootfsPath = options.rootfs;
  if (options.bootArgs !== undefined) config.bootArgs = options.bootArgs;
  if (options.network !== undefined) config.network = options.network;
  if (options.allowHost !== undefined) config.allowHosts = options.allowHost;
  if (options.accel !== undefined) config.accel = options.accel;
  if (options.backend !== undefined) config.backend = options.backend;
  if (options.jailer === true) config.jailer = true;
  return config;
}

/** `--comm-channel`: which control channel carries the command (lib/channels/policy.ts). */
export function commChannelOption() {
  return new Option("--comm-channel <channel>", "control channel: vsock (the guest agent), ssh, or auto (the agent, else SSH)")
    .choices(CHANNELS);
}

/** The SDK option for a parsed `--comm-channel`, if one was given. */
export function commChannelFrom(options: { commChannel?: ChannelChoice }): { commChannel?: ChannelChoice } {
  return options.commChannel === undefined ? {} : { commChannel: options.commChannel };
}
