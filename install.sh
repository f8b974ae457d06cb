#!/bin/sh
# Installs smolvm: one self-contained binary, plus completions for bash, zsh and fish.
#
#   curl -fsSL https://github.com/smolvm-dev/smolvm/releases/latest/download/install.sh | sh
#   sh install.sh [--prefix DIR] [--version X.Y.Z] [--no-completions]
#   sh install.sh [--version X.Y.Z] --print-url FILE    (where FILE of that release is; no install)
#
# The binary is checked against the release's SHA256SUMS before anything is put in place, and
# a run that finds everything current changes nothing. SMOLVM_INSTALL_URL points at another
# releases base URL laid out like GitHub's (BASE/latest/download/FILE, BASE/download/vX.Y.Z/FILE).
# POSIX sh: runs under dash, bash, busybox sh and macOS's sh.
set -eu

# The project's GitHub repository. lib/distribution/release-url.ts names it too; a test keeps
# the two equal, so moving the project means changing both lines.
SMOLVM_REPOSITORY="smolvm-dev/smolvm"
DEFAULT_RELEASES_URL="https://github.com/$SMOLVM_REPOSITORY/releases"

say() { printf '%s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
# die MESSAGE [HINT]: the same shape as smolvm's own errors.
die() {
  printf 'error: %s\n' "$1" >&2
  if [ -n "${2:-}" ]; then printf '  hint: %s\n' "$2" >&2; fi
  exit 1
}
usage() {
  cat <<'EOF'
Usage: install.sh [--prefix DIR] [--version X.Y.Z] [--no-completions]
       install.sh [--version X.Y.Z] --print-url FILE

Installs the smolvm binary into DIR (default ~/.local/bin) and shell completions where bash,
zsh and fish look for them. Without --version, installs the latest release. --print-url
prints the URL of one file of the release (manifest.json, say) and installs nothing.

Environment: SMOLVM_INSTALL_URL  releases base URL (default the project's GitHub releases)
EOF
}
usage_error() {
  printf 'error: %s\n  hint: run `sh install.sh --help` for usage\n' "$1" >&2
  exit 2
}

prefix=""
version="latest"
completions=1
print_url=""
while [ $# -gt 0 ]; do
  case $1 in
    --prefix) [ $# -ge 2 ] || usage_error "--prefix needs a directory"; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#--prefix=}; shift ;;
    --version) [ $# -ge 2 ] || usage_error "--version needs a version (e.g. 0.2.0)"; version=$2; shift 2 ;;
    --version=*) version=${1#--version=}; shift ;;
    --no-completions) completions=0; shift ;;
    --print-url) [ $# -ge 2 ] || usage_error "--print-url needs a file name"; print_url=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage_error "Unknown option \"$1\"" ;;
  esac
done

version=${version#v}
case $version in
  latest) ;;
  [0-9]*.[0-9]*.[0-9]*) case $version in *[!0-9A-Za-z.+-]*) usage_error "Not a version: \"$version\" (expected X.Y.Z)" ;; esac ;;
  *) usage_error "Not a version: \"$version\" (expected X.Y.Z)" ;;
esac

if [ -z "$prefix" ]; then
  [ -n "${HOME:-}" ] || die "Cannot pick an install directory: HOME is not set" "name one: sh install.sh --prefix DIR"
  prefix="$HOME/.local/bin"
fi
case $prefix in /*) ;; *) prefix="$(pwd)/$prefix" ;; esac
prefix=${prefix%/}

base=${SMOLVM_INSTALL_URL:-$DEFAULT_RELEASES_URL}
base=${base%/}
case $base in http://* | https://*) ;; *) die "Cannot use SMOLVM_INSTALL_URL \"$base\": not an http(s) URL" "set it to a releases base URL, or unset it" ;; esac
if [ "$version" = latest ]; then release_url="$base/latest/download"; else release_url="$base/download/v$version"; fi
if [ -n "$print_url" ]; then
  case $print_url in */* | "") usage_error "--print-url takes a file name, not a path: \"$print_url\"" ;; esac
  say "$release_url/$print_url"
  exit 0
fi

# --- platform -------------------------------------------------------------------------------
os=$(uname -s)
machine=$(uname -m)
case $os in
  Linux) os=linux ;;
  Darwin) os=darwin ;;
  *) die "Cannot install smolvm: unsupported operating system \"$os\"" "smolvm runs on Linux and macOS, on x86_64 or arm64" ;;
esac
case $machine in
  x86_64 | amd64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) die "Cannot install smolvm: unsupported CPU architecture \"$machine\"" "smolvm runs on x86_64 and arm64 (aarch64) machines, under Linux or macOS" ;;
esac
# A shell under Rosetta reports x86_64 on an Apple-silicon Mac: the native binary is the one to use.
if [ "$os" = darwin ] && [ "$arch" = x64 ] && [ "$(sysctl -n sysctl.proc_translated 2>/dev/null || true)" = 1 ]; then
  arch=arm64
fi
asset="smolvm-$os-$arch"

# --- tools ----------------------------------------------------------------------------------
if command -v curl >/dev/null 2>&1; then
  fetcher=curl
elif command -v wget >/dev/null 2>&1; then
  fetcher=wget
else
  die "Cannot install smolvm: neither curl nor wget is installed" "install one of them (Debian/Ubuntu: apt-get install curl)"
fi
if command -v sha256sum >/dev/null 2>&1; then
  sha256() { sha256sum "$1" | cut -d' ' -f1; }
elif command -v shasum >/dev/null 2>&1; then
  sha256() { shasum -a 256 "$1" | cut -d' ' -f1; }
elif command -v openssl >/dev/null 2>&1; then
  sha256() { openssl dgst -sha256 -r "$1" | cut -d' ' -f1; }
else
  die "Cannot verify the download: no sha256sum, shasum or openssl found" "install coreutils (sha256sum) and run this again"
fi

# download URL FILE: the whole file or a failure, never a silently short one.
download() {
  if [ "$fetcher" = curl ]; then
    if [ -t 2 ] && [ "${2##*/}" = "$asset" ]; then progress=--progress-bar; else progress=--silent; fi
    curl --fail --location --show-error $progress --retry 2 --connect-timeout 30 --output "$2" "$1" ||
      die "Cannot download $1 (curl exit $?)" "check the network, and that release ${version} exists at $base"
  else
    wget -q -O "$2" "$1" || die "Cannot download $1 (wget exit $?)" "check the network, and that release ${version} exists at $base"
  fi
}

# --- scratch space and cleanup ----------------------------------------------------------------
# Downloads land in a private temporary directory, never in the install directory: an
# interrupted run leaves nothing half-written where the binary lives.
tmp=""
partial=""
cleanup() {
  if [ -n "$partial" ]; then rm -f "$partial"; fi
  if [ -n "$tmp" ]; then rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
tmp=$(mktemp -d "${TMPDIR:-/tmp}/smolvm-install.XXXXXX") || die "Cannot create a temporary directory under ${TMPDIR:-/tmp}" "set TMPDIR to a writable directory"

# Fail before downloading 100 MB when the binary could not be put in place anyway.
if ! mkdir -p "$prefix" 2>/dev/null || ! (: >"$prefix/.smolvm-install-probe.$$") 2>/dev/null; then
  die "Cannot install smolvm into $prefix: no permission to write there" \
    "install into a directory you own, e.g. sh install.sh --prefix \"\$HOME/bin\" (then add it to PATH), or run as root for a system directory: --prefix /usr/local/bin"
fi
rm -f "$prefix/.smolvm-install-probe.$$"

# --- download and verify ----------------------------------------------------------------------
download "$release_url/SHA256SUMS" "$tmp/SHA256SUMS"
expected=$(awk -v name="$asset" '$2 == name || $2 == "*" name { print $1; exit }' "$tmp/SHA256SUMS")
case $expected in
  "" ) die "Cannot install smolvm: $release_url/SHA256SUMS lists no $asset" "this release has no binary for $os-$arch" ;;
  *[!0-9a-f]*) die "Cannot install smolvm: $release_url/SHA256SUMS has a malformed entry for $asset" "the release is broken; report it" ;;
esac
[ ${#expected} -eq 64 ] || die "Cannot install smolvm: $release_url/SHA256SUMS has a malformed entry for $asset" "the release is broken; report it"

target="$prefix/smolvm"
binary_changed=0
if [ -f "$target" ] && [ "$(sha256 "$target")" = "$expected" ]; then
  : # The installed binary is exactly this release's: nothing to download.
else
  say "Downloading $asset from $release_url"
  download "$release_url/$asset" "$tmp/$asset"
  actual=$(sha256 "$tmp/$asset")
  if [ "$actual" != "$expected" ]; then
    die "Cannot install smolvm: the checksum of $asset does not match SHA256SUMS (expected $expected, got $actual); nothing was installed" \
      "the download was damaged or tampered with: run this again, and report it if it keeps failing"
  fi
  chmod 755 "$tmp/$asset"
  if ! probe=$("$tmp/$asset" --version 2>&1); then
    die "Cannot install smolvm: the downloaded $asset does not run on this system: $probe" \
      "smolvm's Linux binaries need glibc (not musl); see the README for running it from source"
  fi
  # Copy next to the target, then rename: the switch to the new binary is atomic.
  partial="$prefix/.smolvm.partial.$$"
  cp "$tmp/$asset" "$partial"
  chmod 755 "$partial"
  mv -f "$partial" "$target"
  partial=""
  binary_changed=1
fi
installed=$("$target" --version 2>/dev/null || true)

# --- completions ------------------------------------------------------------------------------
# A home install puts them where each shell looks for a user's completions (the same places
# `smolvm completions SHELL --install` uses); a system prefix (/usr/local/bin) puts them under
# its share/ directory, where the shells' system-wide search paths look.
completion_path() {
  case $prefix in
    "${HOME:-/nonexistent}"/*)
      case $1 in
        bash) printf '%s\n' "${XDG_DATA_HOME:-$HOME/.local/share}/bash-completion/completions/smolvm" ;;
        zsh) printf '%s\n' "$HOME/.zfunc/_smolvm" ;;
        fish) printf '%s\n' "${XDG_CONFIG_HOME:-$HOME/.config}/fish/completions/smolvm.fish" ;;
      esac ;;
    */bin)
      share="${prefix%/bin}/share"
      case $1 in
        bash) printf '%s\n' "$share/bash-completion/completions/smolvm" ;;
        zsh) printf '%s\n' "$share/zsh/site-functions/_smolvm" ;;
        fish) printf '%s\n' "$share/fish/vendor_completions.d/smolvm.fish" ;;
      esac ;;
  esac
}
completions_changed=""
if [ "$completions" = 1 ]; then
  for shell in bash zsh fish; do
    file=$(completion_path "$shell")
    if [ -z "$file" ]; then
      warn "no standard completion directory for $prefix; print them with: smolvm completions $shell"
      continue
    fi
    if ! "$target" completions "$shell" >"$tmp/completion.$shell" 2>"$tmp/completion.err"; then
      warn "cannot generate $shell completions: $(cat "$tmp/completion.err")"
      continue
    fi
    if [ -f "$file" ] && cmp -s "$tmp/completion.$shell" "$file"; then continue; fi
    dir=${file%/*}
    if ! mkdir -p "$dir" 2>/dev/null || ! cp "$tmp/completion.$shell" "$dir/.smolvm-completion.$$" 2>/dev/null; then
      warn "cannot write $shell completions to $dir; print them with: smolvm completions $shell"
      continue
    fi
    mv -f "$dir/.smolvm-completion.$$" "$file"
    completions_changed="$completions_changed $shell:$file"
  done
fi

# --- report -----------------------------------------------------------------------------------
if [ "$binary_changed" = 0 ] && [ -z "$completions_changed" ]; then
  say "$installed is already installed in $prefix and up to date; nothing to do."
  exit 0
fi
if [ "$binary_changed" = 1 ]; then say "Installed $installed to $target"; else say "$installed in $prefix is already current"; fi
for entry in $completions_changed; do
  say "Installed ${entry%%:*} completions to ${entry#*:}"
  case $entry in
    zsh:"${HOME:-/nonexistent}"/.zfunc/*) say "  zsh: make sure ~/.zshrc has fpath=(~/.zfunc \$fpath) before compinit" ;;
  esac
done
command_name=smolvm
case ":${PATH:-}:" in
  *":$prefix:"*) ;;
  *)
    say "$prefix is not on your PATH; add it: export PATH=\"$prefix:\$PATH\""
    command_name="$target"
    ;;
esac
say ""
say "Next: $command_name setup      (host packages, guest kernel and image)"
say "Then: $command_name run -- uname -a"
