/**
 * The fresh-host check: proves that the one package list (lib/host/packages.ts) is enough to
 * build what smolvm builds, on a machine where nothing was ever installed by hand.
 *
 *   bun scripts/fresh-host-check.ts        (as root; `.ci/run` runs it)
 *
 * It makes a minimal Debian bookworm root with exactly `smolvm setup`'s packages and nothing
 * else (mmdebstrap, minbase, no Recommends), cached under the test cache by the hash of the
 * list, and inside it (chroot, in a private mount namespace) builds the guest agent for both
 * arches and runs the kernel's configuration step for both arches. A package missing from the
 * list fails here, with the step's output, instead of on a user's first `smolvm setup`.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from "node:fs";
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
const tarball = join(cache, `${SUITE}-${key}.tar`);
mkdirSync(cache, { recursive: true });

if (!existsSync(tarball)) {
  step(`building a ${SUITE} root with exactly the ${packages.length} packages of the list (cached by its hash ${key})`);
  const partial = `${tarball}.${process.pid}.partial`;
  try {
    const sources = debianSourceLines(SUITE, ["main"], readHostAptSources(), process.env.SMOLVM_DEBIAN_MIRROR);
    run("mmdebstrap", [
      "--mode=root", "--variant=minbase", `--include=${packages.join(",")}`,
      "--aptopt=APT::Install-Recommends \"false\"", "--format=tar", SUITE, partial, ...sources,
    ], "mmdebstrap of the package list");
    renameSync(partial, tarball);
  } finally {
    rmSync(partial, { force: true });
  }
}

const work = mkdtempSync(join(cache, ".check-"));
try {
  const fresh = join(work, "root");
  mkdirSync(fresh);
  step("unpacking the root");
  run("tar", ["-xf", tarball, "-C", fresh], "unpacking the fresh root");
  const inside = join(fresh, "tmp", "smolvm");
  for (const dir of ["guest-agent", "kernel"]) {
    cpSync(join(root, dir), join(inside, dir), { recursive: true, filter: (path) => !path.includes("/guest-agent/build") });
  }
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
  // A private mount namespace: /proc and /dev go away with it, whatever happens here.
  run("unshare", ["--mount", "--propagation", "private", "sh", "-c",
    `mount -t proc proc "$0/proc" && mount --rbind /dev "$0/dev" && exec chroot "$0" /bin/sh -c "$1"`, fresh, script],
  "the build steps inside the fresh root");
  step("ok: the package list builds the agent for both arches and configures both kernels");
} finally {
  rmSync(work, { recursive: true, force: true });
}
