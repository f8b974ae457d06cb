import type { Command } from "@commander-js/extra-typings";
import { action } from "./action.ts";
import { Progress } from "./output.ts";

export function registerSetup(program: Command): void {
  program
    .command("setup")
    .description("install the host packages smolvm needs, then build the default kernel and image")
    .option("--image <name>", "the image to prepare", "debian")
    .option("--skip-packages", "do not install host packages")
    .option("--packages-only", "only install host packages (no kernel or image build)")
    .option("--with-test-tools", "also the packages smolvm's own test suite uses")
    .option("--json", "print JSON")
    .action(
      action("setup", async (out, options) => {
        const { installHostPackages } = await import("../lib/host/setup.ts");
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
        const { ensureKernel } = await import("../lib/kernel/build.ts");
        const { ensureImage } = await import("../lib/images/build.ts");
        const progress = new Progress(options.json === true);
        const kernel = await ensureKernel(undefined, { onProgress: (p) => progress.update(`kernel: ${p.message}`, p.fraction) }).finally(() => progress.done());
        const image = await ensureImage(options.image, { onProgress: (p) => progress.update(`image ${options.image}: ${p.message}`, p.fraction) }).finally(() => progress.done());
        const result = { packages, kernel, image: image.path };
        out.result(result, () => [
          packageLine,
          `kernel: ${kernel}`,
          `image ${options.image}: ${image.path}`,
          "Ready: try `smolvm run -- uname -a`",
        ].join("\n"));
      }),
    );
}
