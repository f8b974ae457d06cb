/**
 * The npm layer of an image: Node.js and npm from the npm registry (pinned by version and
 * SHA-512), then global npm packages. One POSIX shell script does it, run in two places:
 * inside the Debian tree at image build time (an mmdebstrap customize hook, chrooted, with the
 * build's network) and inside a running sandbox when a preset has no image (install at boot).
 *
 * Debian 12's nodejs is v18; Pi needs Node 20.6 and OpenClaw 24.16, so the runtime is the
 * `node-linux-<arch>` package, which carries the official `node` binary, and npm is the `npm`
 * package itself. Only the `node` binary is kept from the former (its C headers are 67 MB).
 */
import type { GuestArch } from "../kernel/arch.ts";
import type { NodeRuntime } from "./recipes.ts";

export const DEFAULT_NPM_REGISTRY = "https://registry.npmjs.org";

/** The registry the guest or build fetches from: `SMOLVM_NPM_REGISTRY`, else npm's own. */
export function npmRegistry(env: NodeJS.ProcessEnv = process.env): string {
  const value = env.SMOLVM_NPM_REGISTRY?.trim();
  return (value ? value : DEFAULT_NPM_REGISTRY).replace(/\/+$/, "");
}

/** Lines the script prints to say where it is: `smolvm-install: STEP/STEPS what`. */
export const INSTALL_STEP_PREFIX = "smolvm-install: ";

export function parseInstallStep(line: string): { step: number; steps: number; message: string } | undefined {
  const match = /^smolvm-install: (\d+)\/(\d+) (.*)$/.exec(line);
  return match ? { step: Number(match[1]), steps: Number(match[2]), message: match[3]! } : undefined;
}

const NODE_ARCH: Record<GuestArch, string> = { x86_64: "x64", aarch64: "arm64" };

/** Single-quoted for sh. */
export function shQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/**
 * The tarball URL of `name@version` on `registry` (scoped names keep their scope in the path
 * only). Names and versions are validated by the recipe schema to [@a-z0-9._/-], safe in sh.
 */
export function tarballUrl(registry: string, name: string, version: string): string {
  const base = name.startsWith("@") ? name.slice(name.indexOf("/") + 1) : name;
  return `${registry}/${name}/-/${base}-${version}.tgz`;
}

export interface NpmLayerScriptOptions {
  runtime: NodeRuntime;
  packages: readonly string[];
  arch: GuestArch;
  registry?: string;
  /** Where node, npm and global packages go (default /usr/local). */
  prefix?: string;
  /** PEM certificates trusted for the install's downloads only (see `hostExtraCaCertificates`). */
  extraCaPem?: string;
}

/**
 * The install script. It verifies the two tarballs it fetches itself against the pinned SHA-512
 * (npm verifies the packages it installs against the registry's integrity), skips Node.js when
 * the pinned version is already there, and drops npm's download cache at the end (an image would
 * otherwise carry every tarball twice).
 */
export function npmLayerScript(options: NpmLayerScriptOptions): string {
  const { runtime, arch } = options;
  const registry = options.registry ?? npmRegistry();
  const nodePackage = `node-linux-${NODE_ARCH[arch]}`;
  const steps = 3;
  return `set -eu
# The host's npm settings (a build inherits its environment) are not the tree's.
for name in $(env | sed -n 's/^\\([Nn][Pp][Mm]_[Cc][Oo][Nn][Ff][Ii][Gg]_[^=]*\\)=.*/\\1/p'); do unset "$name"; done
prefix=${shQuote(options.prefix ?? "/usr/local")}
registry=${shQuote(registry)}
export PATH="$prefix/bin:$PATH" HOME="\${HOME:-/root}" npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
work=$(mktemp -d /tmp/smolvm-install.XXXXXX)
trap 'rm -rf "$work"' EXIT
step() { echo "${INSTALL_STEP_PREFIX}$*"; }
${installTrustBlock(options.extraCaPem)}fetch() {
  curl -fsSL --retry 3 --connect-timeout 30 -o "$3" "$1"
  want=$(printf %s "$2" | cut -c8- | base64 -d | od -An -vtx1 | tr -d ' \\n')
  got=$(sha512sum "$3" | cut -d' ' -f1)
  if [ "$want" != "$got" ]; then echo "checksum mismatch for $1" >&2; exit 1; fi
}
mkdir -p "$prefix/bin" "$prefix/lib/node_modules"
if [ "$(node --version 2>/dev/null || true)" != ${shQuote(`v${runtime.node.version}`)} ]; then
  step 1/${steps} downloading Node.js ${runtime.node.version}
  fetch "$registry${tarballUrl("", nodePackage, runtime.node.version)}" ${shQuote(runtime.node.sha512[arch])} "$work/node.tgz"
  tar -xzf "$work/node.tgz" -C "$work" package/bin/node
  install -m 0755 "$work/package/bin/node" "$prefix/bin/node"
  step 2/${steps} installing npm ${runtime.npm.version}
  fetch "$registry${tarballUrl("", "npm", runtime.npm.version)}" ${shQuote(runtime.npm.sha512)} "$work/npm.tgz"
  rm -rf "$prefix/lib/node_modules/npm"
  mkdir -p "$prefix/lib/node_modules/npm"
  tar -xzf "$work/npm.tgz" -C "$prefix/lib/node_modules/npm" --strip-components=1 --no-same-owner
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$prefix/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$prefix/bin/npx"
fi
node --version
step 3/${steps} installing ${options.packages.join(" ")}
npm install --global --prefix "$prefix" --registry "$registry" --no-audit --no-fund --loglevel=warn ${options.packages.map(shQuote).join(" ")}
npm cache clean --force >/dev/null 2>&1 || true
rm -rf "$HOME/.npm"
`;
}

/**
 * Trust for the install's downloads: the tree's own CA bundle plus the host's extra
 * certificates, in a temporary bundle curl, npm and Node.js use while the script runs (the
 * image keeps its own bundle unchanged). Without extra certificates, nothing is set.
 */
export function installTrustBlock(extraCaPem: string | undefined): string {
  if (extraCaPem === undefined || extraCaPem.trim() === "") return "";
  const marker = "SMOLVM_EXTRA_CA_END";
  if (extraCaPem.includes(marker)) throw new Error("the extra CA certificates contain the heredoc marker");
  return `cat > "$work/extra-ca.pem" <<'${marker}'
${extraCaPem.trim()}
${marker}
cat /etc/ssl/certs/ca-certificates.crt "$work/extra-ca.pem" > "$work/ca.pem" 2>/dev/null || cp "$work/extra-ca.pem" "$work/ca.pem"
export CURL_CA_BUNDLE="$work/ca.pem" SSL_CERT_FILE="$work/ca.pem" npm_config_cafile="$work/ca.pem" NODE_EXTRA_CA_CERTS="$work/extra-ca.pem" PIP_CERT="$work/ca.pem"
`;
}
