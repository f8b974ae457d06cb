/**
 * Writing an image's overlay tree: the directories and files of the recipe, the agent, and (for
 * busybox images) BusyBox with its applet links. Ownership is left to the assembly step, which
 * runs as root or under fakeroot so everything lands in the image owned by root.
 */
import { chmod, copyFile, mkdir, open, symlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { HostDependencyMissingError } from "../errors.ts";
import { runHostChecked, which } from "../host/process.ts";
import { AGENT_GUEST_PATH } from "../kernel/cmdline.ts";
import { COMMON_DIRS, COMMON_FILES, type Recipe } from "./recipes.ts";

/** Applets not linked: the agent is the only init. */
const SKIPPED_APPLETS = new Set(["sbin/init", "linuxrc", "init"]);

function hostPath(root: string, guestPath: string): string {
  return join(root, ...guestPath.split("/").filter(Boolean));
}

/** Writes the recipe's dirs and files (after the common ones) and the agent into `root`. */
export async function writeOverlay(root: string, recipe: Recipe, agent: Uint8Array): Promise<void> {
  for (const dir of [...COMMON_DIRS, ...recipe.dirs]) {
    const path = hostPath(root, dir.path);
    await mkdir(path, { recursive: true });
    await chmod(path, Number.parseInt(dir.mode ?? "0755", 8));
  }
  for (const file of [...COMMON_FILES, ...recipe.files]) {
    const path = hostPath(root, file.path);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, file.content);
    await chmod(path, Number.parseInt(file.mode ?? "0644", 8));
  }
  const agentPath = hostPath(root, AGENT_GUEST_PATH);
  await mkdir(dirname(agentPath), { recursive: true });
  await writeFile(agentPath, agent);
  await chmod(agentPath, 0o755);
}

/** The host's static BusyBox (Debian package busybox-static), or a clear error. */
export async function findStaticBusybox(): Promise<string> {
  const candidates = ["/bin/busybox", "/usr/bin/busybox", which("busybox")].filter((p): p is string => !!p);
  for (const path of candidates) {
    if (await isStaticElf(path)) return path;
  }
  throw new HostDependencyMissingError("Cannot build the base image: no statically linked busybox on this host", {
    hint: "install it with `apt-get install busybox-static` (or run `smolvm setup`)",
  });
}

/** True for an ELF executable without a program interpreter (PT_INTERP), i.e. static. */
export async function isStaticElf(path: string): Promise<boolean> {
  let handle;
  try {
    handle = await open(path, "r");
  } catch {
    return false;
  }
  try {
    const header = Buffer.alloc(64);
    await handle.read(header, 0, 64, 0);
    if (header.readUInt32BE(0) !== 0x7f454c46 || header[4] !== 2 || header[5] !== 1) return false;
    const phoff = Number(header.readBigUInt64LE(32));
    const phentsize = header.readUInt16LE(54);
    const phnum = header.readUInt16LE(56);
    const table = Buffer.alloc(phentsize * phnum);
    await handle.read(table, 0, table.length, phoff);
    for (let i = 0; i < phnum; i++) {
      if (table.readUInt32LE(i * phentsize) === 3) return false; // PT_INTERP
    }
    return true;
  } finally {
    await handle.close();
  }
}

/**
 * Copies BusyBox to /bin/busybox and links each applet it lists to it. Returns the count.
 * `runner` runs a foreign-arch busybox (e.g. `["/usr/bin/qemu-aarch64"]`) to ask for its list.
 */
export async function installBusybox(root: string, busybox: string, runner: readonly string[] = []): Promise<number> {
  const target = hostPath(root, "/bin/busybox");
  await mkdir(dirname(target), { recursive: true });
  await copyFile(busybox, target);
  await chmod(target, 0o755);
  const [program, ...args] = [...runner, busybox, "--list-full"];
  const { stdout } = await runHostChecked(program!, args, { action: "Cannot list busybox applets" });
  let linked = 0;
  for (const applet of stdout.split("\n").map((l) => l.trim()).filter(Boolean)) {
    if (SKIPPED_APPLETS.has(applet) || applet === "bin/busybox") continue;
    const link = hostPath(root, `/${applet}`);
    await mkdir(dirname(link), { recursive: true });
    try {
      await symlink("/bin/busybox", link);
      linked++;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
  }
  return linked;
}
