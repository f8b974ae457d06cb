/**
 * Turning a tree into an ext4 file without mounting anything: unpack the base tarball (if any),
 * lay the overlay on top, delete the recipe's `remove` patterns, size the filesystem from what
 * the tree uses, and `mkfs.ext4 -d`. All of it runs in one shell, as root when smolvm is root
 * and otherwise under `fakeroot`, so files keep root ownership (and device nodes from a Debian
 * tarball survive) in an image built by an unprivileged user.
 */
import { runLogged } from "../util/run-logged.ts";
import { which } from "../host/process.ts";
import { HostDependencyMissingError, SmolError } from "../errors.ts";

export interface AssembleOptions {
  /** Scratch directory for the full tree (created). */
  treeDir: string;
  /** Copied over the tree last, through directory symlinks such as a merged /sbin. */
  overlayDir: string;
  /** A root filesystem tarball unpacked first. */
  tarball?: string;
  /** Guest-path glob patterns deleted after the overlay. */
  remove: readonly string[];
  freeMiB: number;
  /** The ext4 volume label. */
  label: string;
  /** The image file to create. */
  imagePath: string;
  logPath: string;
  onLine?: (line: string) => void;
}

// Positional: $1 tree, $2 overlay, $3 image, $4 free MiB, $5 label, $6 tarball or "".
// REMOVE holds newline-separated patterns; each is expanded by the shell under the tree.
const SCRIPT = String.raw`
set -eu
tree=$1 overlay=$2 image=$3 free_mib=$4 label=$5 tarball=$6
mkdir -p "$tree"
if [ -n "$tarball" ]; then
  echo "smolvm: unpacking $(basename "$tarball")"
  tar -xpf "$tarball" -C "$tree" --numeric-owner
fi
echo "smolvm: adding the overlay"
# Through tar, not cp -a: Debian's /sbin and /bin are symlinks into /usr (merged /usr), and
# --keep-directory-symlink writes through them instead of failing on the type clash.
(cd "$overlay" && tar -cf - .) | tar -xpf - -C "$tree" --numeric-owner --keep-directory-symlink
old_ifs=$IFS
IFS='
'
for pattern in $REMOVE; do
  IFS=$old_ifs
  for path in "$tree"$pattern; do
    [ -e "$path" ] || [ -L "$path" ] || continue
    rm -rf -- "$path"
  done
done
IFS=$old_ifs
used=$(du -sm "$tree" | cut -f1)
size=$(( (used + used / 7 + free_mib + 64 + 63) / 64 * 64 ))
echo "smolvm: mkfs.ext4 $size MiB for $used MiB of files"
mkfs.ext4 -q -F -b 4096 -i 8192 -m 0 -L "$label" -E root_owner=0:0 -d "$tree" "$image" "$size"M
echo "smolvm: size_mib=$size used_mib=$used"
`;

export interface AssembleResult {
  sizeMiB: number;
  usedMiB: number;
}

export async function assembleExt4(options: AssembleOptions): Promise<AssembleResult> {
  if (!which("mkfs.ext4")) {
    throw new HostDependencyMissingError("Cannot build the image: mkfs.ext4 is not installed", {
      hint: "install it with `apt-get install e2fsprogs` (or run `smolvm setup`)",
    });
  }
  const args = [
    "-c", SCRIPT, "smolvm-assemble",
    options.treeDir, options.overlayDir, options.imagePath, String(options.freeMiB),
    options.label.slice(0, 16), options.tarball ?? "",
  ];
  let argv: string[] = ["sh", ...args];
  if (process.getuid?.() !== 0) {
    const fakeroot = which("fakeroot");
    if (!fakeroot) {
      throw new HostDependencyMissingError("Cannot build the image as a non-root user: fakeroot is not installed", {
        hint: "install it with `apt-get install fakeroot` (or build as root)",
      });
    }
    argv = [fakeroot, "--", "sh", ...args];
  }
  let result: AssembleResult | undefined;
  await runLogged(argv[0]!, argv.slice(1), {
    logPath: options.logPath,
    action: "Cannot assemble the image",
    env: {
      ...process.env,
      REMOVE: options.remove.join("\n"),
      PATH: `${process.env.PATH ?? ""}:/usr/sbin:/sbin`,
    },
    onLine: (line) => {
      const m = /^smolvm: size_mib=(\d+) used_mib=(\d+)/.exec(line);
      if (m) result = { sizeMiB: Number(m[1]), usedMiB: Number(m[2]) };
      options.onLine?.(line);
    },
  });
  if (!result) throw new SmolError("INTERNAL", "Cannot assemble the image: the size report is missing from its output");
  return result;
}
