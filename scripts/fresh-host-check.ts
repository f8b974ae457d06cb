/**
 * The fresh-host check: proves that the one package list (lib/host/packages.ts) is enough to
 * build what smolvm builds, on a machine where nothing was ever installed by hand.
 *
 *   bun scripts/fresh-host-check.ts        (as root; `.ci/run` runs it)
 *
 * It makes a minimal Debian bookworm root with exactly `smolvm setup`'s packages and nothing
 * else (mmdebstrap, minbase, no Recommends), cached under the test cache by the hash of the
 * list, and inside it (chroot, in a private mount namespace, on a throwaway overlay so the
 * cached root stays pristine) builds the guest agent for both arches and runs the kernel's
 * configuration step for both arches. A package missing from the list fails here, with the
 * step's output, instead of on a user's first `smolvm setup`.
 *
 * A pass is remembered by the hash of the list and of every input the steps read (agent
 * sources, kernel script and config): the same inputs cannot fail on the same root, so a CI run
 * that changed none of them skips the minutes the steps take.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { setupPackages } from "../lib/host/packages.ts";
import { debianSourceLines, readHostAptSources } from "../lib/images/debian-mirror.ts";

const root = join(import.meta.dirname, "..");
const SUITE = "bookworm";
/** Bump when the steps below change in a way the package list alone does not capture. */
const CHECK_VERSION = 1;

function step(message: string): void {
  console.error(`fresh-host: ${message}`);
}

function run(file: string, args: string[], what: string): void {
  const result = spawnSync(file, args, { stdio: ["ignore", "pipe", "pipe"], encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
  if (result.status !== 0) {
    const output = `${result.stdout ?? ""}${result.stderr ?? ""}`.trimEnd().split("\n").slice(-40).join("\n");
    console.error(`fresh-host: FAILED: ${what} (exit ${result.status ?? result.signal})\n${output}`);
    console.error("fresh-host: a package that step needs is missing from lib/host/packages.ts");
    process.exit(1);
  }
}

if (process.getuid?.() !== 0) {
  console.error("fresh-host: needs root (mmdebstrap and chroot); run it as root, as .ci/run does");
  process.exit(2);
}

const packages = setupPackages();
const key = createHash("sha256").update(JSON.stringify({ CHECK_VERSION, SUITE, packages })).digest("hex").slice(0, 16);
const cache = join(process.env.SMOLVM_CACHE ?? join(homedir(), ".cache", "smolvm-test"), "fresh-host");
const rootDir = join(cache, `${SUITE}-${key}`);
mkdirSync(cache, { recursive: true });

/** Every file the steps read from this checkout, hashed with the list. */
function inputsHash(): string {
  const hash = createHash("sha256").update(key);
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (name === "build") continue;
      if (statSync(path).isDirectory()) walk(path);
      else hash.update(`${path.slice(root.length)}\0`).update(readFileSync(path));
    }
  };
  walk(join(root, "guest-agent"));
  walk(join(root, "kernel"));
  return hash.digest("hex").slice(0, 16);
}
const stamp = join(cache, `passed-${inputsHash()}`);
if (existsSync(stamp)) {
  step(`ok: this package list and these agent and kernel inputs passed before (${stamp})`);
  process.exit(0);
}

if (!existsSync(rootDir)) {
  step(`building a ${SUITE} root with exactly the ${packages.length} packages of the list (cached by its hash ${key})`);
  const partial = `${rootDir}.${process.pid}.partial`;
  const tarball = `${partial}.tar`;
  try {
    const sources = debianSourceLines(SUITE, ["main"], readHostAptSources(), process.env.SMOLVM_DEBIAN_MIRROR);
    run("mmdebstrap", [
      "--mode=root", "--variant=minbase", `--include=${packages.join(",")}`,
      "--aptopt=APT::Install-Recommends \"false\"", "--format=tar", SUITE, tarball, ...sources,
    ], "mmdebstrap of the package list");
    mkdirSync(partial);
    run("tar", ["-xf", tarball, "-C", partial], "unpacking the fresh root");
    renameSync(partial, rootDir);
  } finally {
    rmSync(tarball, { force: true });
    rmSync(partial, { recursive: true, force: true });
  }
  // Roots of earlier lists are of no further use.
  for (const name of readdirSync(cache)) {
    if (name.startsWith(`${SUITE}-`) && name !== `${SUITE}-${key}`) rmSync(join(cache, name), { recursive: true, force: true });
  }
}

const work = mkdtempSync(join(cache, ".check-"));
try {
  const sourcesDir = join(work, "sources");
  for (const dir of ["guest-agent", "kernel"]) {
    cpSync(join(root, dir), join(sourcesDir, dir), { recursive: true, filter: (path) => !path.includes("/guest-agent/build") });
  }
  for (const dir of ["upper", "overlay-work", "merged"]) mkdirSync(join(work, dir));
  const script = [
    "set -eu",
    "cd /tmp/smolvm",
    "echo '==> guest agent, both arches'",
    "make -C guest-agent guest",
    "for arch in x86_64 aarch64; do",
    "  echo \"==> kernel config, $arch\"",
    `  bash kernel/build.sh --arch "$arch" --source /usr/src/${packages.find((p) => p.startsWith("linux-source-"))}.tar.xz --out "/tmp/kernel-$arch" --config-only`,
    "done",
  ].join("\n");
  step("building the guest agent (x86_64, aarch64) and configuring the kernel (x86_64, aarch64) inside it");
  // A private mount namespace: the overlay, /proc and /dev go away with it, whatever happens.
  const mounts = [
    `mount -t overlay overlay -o "lowerdir=$0,upperdir=$1/upper,workdir=$1/overlay-work" "$1/merged"`,
    `mkdir -p "$1/merged/tmp/smolvm" && cp -a "$1/sources/." "$1/merged/tmp/smolvm/"`,
    `mount -t proc proc "$1/merged/proc" && mount --rbind /dev "$1/merged/dev"`,
    `exec chroot "$1/merged" /bin/sh -c "$2"`,
  ].join(" && ");
  run("unshare", ["--mount", "--propagation", "private", "sh", "-c", mounts, rootDir, work, script], "the build steps inside the fresh root");
  writeFileSync(stamp, `${new Date().toISOString()}\n`);
  step("ok: the package list builds the agent for both arches and configures both kernels");
} finally {
  rmSync(work, { recursive: true, force: true });
}
