/**
 * `smolvm setup`: host packages, then the default kernel and image. Package installation uses
 * apt on Debian and Ubuntu (as root, or through sudo); elsewhere it reports the exact packages.
 */
import { existsSync, readFileSync } from "node:fs";
import { CommandFailedError, HostDependencyMissingError } from "../errors.ts";
import { setupPackages } from "./packages.ts";
import { runHost, which } from "./process.ts";

export interface PackageStep {
  manager: "apt" | "none";
  missing: string[];
  installed: string[];
  /** When nothing could be installed here: the command for the user to run. */
  instructions?: string;
}

export function isDebianLike(osRelease = "/etc/os-release"): boolean {
  try {
    const text = readFileSync(osRelease, "utf8");
    return /^(ID|ID_LIKE)=.*\b(debian|ubuntu)\b/m.test(text);
  } catch {
    return false;
  }
}

async function missingDebianPackages(packages: readonly string[]): Promise<string[]> {
  const result = await runHost("dpkg-query", ["-W", "-f=${Package} ${Status}\\n", ...packages], { timeoutMs: 30_000 });
  const installed = new Set(
    result.stdout.split("\n").filter((line) => line.endsWith("ok installed")).map((line) => line.split(" ")[0]),
  );
  return packages.filter((p) => !installed.has(p));
}

export interface InstallOptions {
  /** Also the packages only tests need (`.ci/run` and `setup --with-test-tools`). */
  withTestTools?: boolean;
  log?: (line: string) => void;
}

export async function installHostPackages(options: InstallOptions = {}): Promise<PackageStep> {
  const log = options.log ?? (() => {});
  const wanted = setupPackages({ withTestTools: options.withTestTools === true });
  if (process.platform !== "linux" || !isDebianLike() || which("apt-get") === undefined) {
    return {
      manager: "none",
      missing: wanted,
      installed: [],
      instructions: process.platform === "darwin"
        ? "brew install qemu e2fsprogs (kernel and image builds need a Linux host; use published images)"
        : `install the equivalents of: ${wanted.join(" ")}`,
    };
  }
  const missing = await missingDebianPackages(wanted);
  if (missing.length === 0) return { manager: "apt", missing, installed: [] };
  const root = process.getuid?.() === 0;
  const sudo = root ? [] : which("sudo") === undefined ? undefined : ["sudo", "-n"];
  if (sudo === undefined) {
    throw new HostDependencyMissingError(`Cannot install ${missing.length} host packages: not root and no sudo`, {
      hint: `as root: apt-get install -y ${missing.join(" ")}`,
    });
  }
  const run = async (args: string[]) => {
    const [file, ...rest] = [...sudo, ...args];
    log(`$ ${[file, ...rest].join(" ")}`);
    const result = await runHost(file!, rest, { timeoutMs: 30 * 60_000, env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
    if (result.code !== 0) {
      throw new CommandFailedError(`Cannot install host packages: ${args.slice(0, 2).join(" ")} exited with ${result.code}`, {
        hint: `run it yourself to see why: ${[...sudo, ...args].join(" ")}`,
        details: { stderr: result.stderr.slice(-2000) },
      });
    }
  };
  if (!existsSync("/var/lib/apt/lists") || (await missingDebianPackages(missing)).length > 0) await run(["apt-get", "update", "-q"]);
  await run(["apt-get", "install", "-y", "-q", "--no-install-recommends", ...missing]);
  return { manager: "apt", missing: [], installed: missing };
}
