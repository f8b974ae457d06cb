/**
 * Installing a coding agent inside a running sandbox, for a preset whose image is not at hand
 * (none published for this version, no local build) or that has none (Hermes, a PyPI package).
 * The same script as the image build (lib/images/npm-layer.ts) runs in the guest, which reaches
 * the registries through the sandbox's network; its progress lines drive `onProgress`, and a
 * failure or timeout reports the last lines of its output.
 */
import type { SmolVM } from "../smolvm.ts";
import { CommandFailedError, TimeoutError } from "../errors.ts";
import { hostExtraCaCertificates } from "../host/ca-certificates.ts";
import { getRecipe } from "../images/recipes.ts";
import { installTrustBlock, npmLayerScript, npmRegistry, parseInstallStep, shQuote } from "../images/npm-layer.ts";
import type { GuestArch } from "../kernel/arch.ts";
import type { Preset } from "./catalog.ts";
import { DEFAULT_INSTALL_TIMEOUT_MS } from "./defaults.ts";

const TAIL_LINES = 20;
const SCRIPT_PATH = "/tmp/smolvm-install-agent.sh";

export interface InstallProgress {
  message: string;
  fraction?: number;
}

/** The script that installs `preset` in a sandbox of `arch`. */
export function installScript(preset: Preset, arch: GuestArch, extraCaPem?: string): string {
  const trust = extraCaPem === undefined ? {} : { extraCaPem };
  if (preset.install.kind === "recipe") {
    const recipe = getRecipe(preset.image!);
    if (recipe.rootfs.kind !== "mmdebstrap" || recipe.rootfs.npm === undefined) {
      throw new Error(`preset ${preset.id}: image recipe ${preset.image} has no npm layer`);
    }
    return npmLayerScript({ runtime: recipe.rootfs.npm.runtime, packages: recipe.rootfs.npm.packages, arch, registry: npmRegistry(), ...trust });
  }
  const { apt, package: pkg, bin } = preset.install;
  return `set -eu
export DEBIAN_FRONTEND=noninteractive
work=$(mktemp -d /tmp/smolvm-install.XXXXXX)
trap 'rm -rf "$work"' EXIT
${installTrustBlock(extraCaPem)}
echo "smolvm-install: 1/2 installing ${apt.join(" ")} from Debian"
apt-get update -qq
apt-get install -y -qq --no-install-recommends ${apt.map(shQuote).join(" ")}
echo "smolvm-install: 2/2 installing ${pkg} from PyPI"
python3 -m venv /opt/${bin}
/opt/${bin}/bin/pip install --quiet --disable-pip-version-check --retries 2 --timeout 30 ${shQuote(pkg)}
ln -sf /opt/${bin}/bin/${bin} /usr/local/bin/${bin}
`;
}

/** Runs the install in `vm`; resolves once the agent is installed, throws with the output's tail otherwise. */
export async function installInSandbox(vm: SmolVM, preset: Preset, options: { arch: GuestArch; timeoutMs?: number; onProgress?: (p: InstallProgress) => void }): Promise<void> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_INSTALL_TIMEOUT_MS;
  const script = installScript(preset, options.arch, await hostExtraCaCertificates());
  await vm.files.write(SCRIPT_PATH, script, { mode: 0o700 });
  options.onProgress?.({ message: `installing ${preset.title} in the sandbox`, fraction: 0 });
  const proc = await vm.commands.exec(["sh", "-c", `sh ${SCRIPT_PATH} 2>&1; status=$?; rm -f ${SCRIPT_PATH}; exit $status`], { timeoutMs });
  const tail: string[] = [];
  let partial = "";
  proc.stderr.resume();
  proc.stdout.on("data", (chunk: Buffer) => {
    const lines = (partial + chunk.toString("utf8")).split(/\r?\n/);
    partial = lines.pop() ?? "";
    for (const line of lines) {
      if (line.trim() === "") continue;
      tail.push(line);
      if (tail.length > TAIL_LINES) tail.shift();
      const step = parseInstallStep(line);
      if (step) options.onProgress?.({ message: step.message, fraction: (step.step - 1) / step.steps });
    }
  });
  const result = await proc.wait();
  if (partial.trim() !== "") tail.push(partial);
  const output = tail.join("\n");
  if (result.timedOut) {
    throw new TimeoutError(`Cannot install ${preset.title} in sandbox "${vm.name}": the installer did not finish within ${Math.round(timeoutMs / 1000)} s`, {
      hint: `raise --install-timeout, or check the sandbox's network; its last output:\n${output}`,
      details: { output: tail },
    });
  }
  if (result.exitCode !== 0) {
    throw new CommandFailedError(`Cannot install ${preset.title} in sandbox "${vm.name}": the installer exited with ${result.exitCode ?? `signal ${result.signal}`}`, {
      hint: `its last output:\n${output}`,
      details: { output: tail },
    });
  }
}
