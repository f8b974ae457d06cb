import type { Command } from "@commander-js/extra-typings";
import { action } from "./action.ts";
import { Progress } from "./output.ts";

export function registerSetup(program: Command): void {
  program
    .command("setup")
    .description("install the host packages smolvm needs, then download (or build) the default kernel and image")
    .option("--image <name>", "the image to prepare", "debian")
    .option("--skip-packages", "do not install host packages")
    .option("--packages-only", "only install host packages (no kernel or image build)")
    .option("--with-test-tools", "also the packages smolvm's own test suite uses")
    .option("--firecracker", "only install the pinned Firecracker release (SHA-256 checked) into smolvm's bin directory")
    .option("--json", "print JSON")
    .action(
      action("setup", async (out, options) => {
        if (options.firecracker === true) {
          const { installFirecracker } = await import("../lib/index.ts");
          const progress = new Progress(options.json === true);
          const installed = await installFirecracker({ onProgress: (p) => progress.update(p.message, p.fraction) }).finally(() => progress.done());
          out.result(installed, () => [
            `firecracker v${installed.version}: ${installed.firecracker}${installed.alreadyInstalled ? " (already installed)" : ` (archive SHA-256 ${installed.archiveSha256})`}`,
            `jailer v${installed.version}: ${installed.jailer}`,
            "Check it can run here with `smolvm doctor`",
          ].join("\n"));
          return;
        }
        const { installHostPackages } = await import("../lib/index.ts");
        out.note("Checking host packages...");
        const packages = options.skipPackages === true
          ? undefined
          : await installHostPackages({ withTestTools: options.withTestTools === true, log: (line) => out.note(line) });
        if (packages?.manager === "none") out.warn(`cannot install packages on this system; ${packages.instructions}`);
        const packageLine = packages === undefined
          ? "host packages: skipped"
          : packages.installed.length > 0 ? `installed: ${packages.installed.join(" ")}` : "host packages: all present";
        if (options.packagesOnly === true) {
          out.result({ packages }, () => packageLine);
          return;
        }
        const { hostGuestArch, resolveArtifacts } = await import("../lib/index.ts");
        const progress = new Progress(options.json === true);
        // Published artifacts when the release has them; a local build (kernel and image) when not.
        const artifacts = await resolveArtifacts(options.image, hostGuestArch(), {
          onProgress: (p) => progress.update(p.message, p.fraction),
        }).finally(() => progress.done());
        const result = { packages, kernel: artifacts.kernelPath, image: artifacts.rootfsPath, origin: artifacts.origin };
        const from = artifacts.origin.kind === "published" ? `published ${artifacts.origin.version}` : `built locally: ${artifacts.origin.reason}`;
        out.result(result, () => [
          packageLine,
          `kernel: ${artifacts.kernelPath}`,
          `image ${options.image}: ${artifacts.rootfsPath} (${from})`,
          "Ready: try `smolvm run -- uname -a`",
        ].join("\n"));
      }),
    );
}
