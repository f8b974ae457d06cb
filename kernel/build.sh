#!/usr/bin/env bash
# Builds the smolvm guest kernel from a Linux source tarball.
#
#   kernel/build.sh --arch x86_64|aarch64 --source linux.tar.xz --out DIR [--jobs N] [--config-only]
#
# --config-only stops once the configuration is made and checked (the fresh-host check runs
# that much to prove the host's packages can configure a kernel). Otherwise DIR receives `vmlinux` (x86_64, PVH entry) or `Image` (aarch64) and `config`. The caller
# (`smolvm kernel build`) picks DIR from a hash of the inputs and renames it into the cache, so
# this script never has to decide whether a build is current.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
arch="" source="" out="" jobs=$(nproc) config_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch=$2; shift 2 ;;
    --source) source=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --config-only) config_only=1; shift ;;
    *) echo "build.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ -n "$arch" ] && [ -n "$source" ] && [ -n "$out" ] || {
  echo "usage: build.sh --arch x86_64|aarch64 --source TARBALL --out DIR [--jobs N] [--config-only]" >&2; exit 2; }

case "$arch" in
  x86_64) karch=x86_64; fragment=x86_64.config; target=vmlinux; artifact=vmlinux; cross="" ;;
  aarch64) karch=arm64; fragment=arm64.config; target=Image; artifact=arch/arm64/boot/Image
           cross=aarch64-linux-gnu- ;;
  *) echo "build.sh: unsupported arch '$arch' (use x86_64 or aarch64)" >&2; exit 2 ;;
esac

mkdir -p "$out"
src="$out/src"
rm -rf "$src"
mkdir -p "$src"
echo "==> extracting $(basename "$source")"
tar -xf "$source" -C "$src" --strip-components=1

mk() { make -C "$src" ARCH="$karch" ${cross:+CROSS_COMPILE=$cross} "$@"; }

echo "==> configuring ($arch)"
mk tinyconfig >/dev/null
"$src/scripts/kconfig/merge_config.sh" -m -O "$src" "$src/.config" \
  "$here/config/common.config" "$here/config/$fragment" >/dev/null
mk olddefconfig >/dev/null

# Kconfig silently drops options whose dependencies are unmet; a dropped virtio or ext4 option
# means a guest that cannot boot, so insist that every requested option survived.
missing=0
while IFS= read -r line; do
  case "$line" in
    CONFIG_*=*) ;;
    *) continue ;;
  esac
  key=${line%%=*} want=${line#*=}
  if [ "$want" = "n" ]; then
    if grep -q "^$key=" "$src/.config"; then echo "config: $key should be off" >&2; missing=1; fi
  elif ! grep -qx "$key=$want" "$src/.config"; then
    echo "config: $key=$want did not survive olddefconfig" >&2; missing=1
  fi
done < <(cat "$here/config/common.config" "$here/config/$fragment")
[ "$missing" = 0 ] || { echo "build.sh: the kernel config is incomplete (see above)" >&2; exit 1; }
if [ "$config_only" = 1 ]; then
  cp "$src/.config" "$out/config"
  rm -rf "$src"
  echo "==> configured: $out/config"
  exit 0
fi

echo "==> building $target with $jobs jobs"
mk -j"$jobs" "$target"

cp "$src/$artifact" "$out/$(basename "$artifact")"
cp "$src/.config" "$out/config"
rm -rf "$src"
echo "==> done: $out/$(basename "$artifact")"
