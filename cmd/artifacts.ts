/** Guest kernels and root images: `smolvm kernel ...`, `smolvm image ...`. */
import { Argument, Option, type Command } from "@commander-js/extra-typings";
import { action } from "./action.ts";
import { diskSize, integer } from "./options.ts";
import { Progress, table } from "./output.ts";

const ARCH_OPTION = () => new Option("--arch <arch>", "guest architecture (default: this host's)").choices(["x86_64", "aarch64"] as const);

export function registerArtifacts(program: Command): void {
  const kernel = program.command("kernel").description("the guest kernel smolvm builds and boots");
  kernel
    .command("build")
    .description("build the guest kernel into the cache (about 10 minutes; cached by config hash)")
    .addOption(ARCH_OPTION())
    .option("--source <tarball>", "a Linux source tarball of your choosing (default: Debian's linux-source package, verified by dpkg)")
    .option("--force", "rebuild even when cached")
    .option("--json", "print JSON")
    .action(
      action("kernel build", async (out, options) => {
        const { buildKernel } = await import("../lib/index.ts");
        const progress = new Progress(options.json === true);
        const info = await buildKernel({
          ...(options.arch === undefined ? {} : { arch: options.arch }),
          ...(options.source === undefined ? {} : { source: options.source }),
          force: options.force === true,
          onProgress: (p) => progress.update(`kernel: ${p.message}`, p.fraction),
        }).finally(() => progress.done());
        out.result(info, () => `kernel ${info.arch}: ${info.path}`);
      }),
    );
  kernel
    .command("list")
    .description("list cached kernels")
    .option("--json", "print JSON")
    .action(
      action("kernel list", async (out, _options) => {
        const { listKernels } = await import("../lib/index.ts");
        const kernels = await listKernels();
        out.result(kernels, () =>
          kernels.length === 0
            ? "No kernels built. `smolvm kernel build` builds one."
            : table(["ARCH", "KEY", "CURRENT", "BUILT", "PATH"], kernels.map((k) => [k.arch, k.key.slice(0, 12), k.current ? "yes" : "no", k.builtAt, k.path])),
        );
      }),
    );

  const image = program.command("image").description("root filesystem images");
  image
    .command("build")
    .description("build an image into the cache (cached by recipe hash)")
    .addArgument(new Argument("<name>", "image name (base, debian)"))
    .addOption(ARCH_OPTION())
    .option("--force", "rebuild even when cached")
    .option("--json", "print JSON")
    .action(
      action("image build", async (out, name, options) => {
        const { buildImage } = await import("../lib/index.ts");
        const progress = new Progress(options.json === true);
        const info = await buildImage(name, {
          ...(options.arch === undefined ? {} : { arch: options.arch }),
          force: options.force === true,
          onProgress: (p) => progress.update(`image ${name}: ${p.message}`, p.fraction),
        }).finally(() => progress.done());
        out.result(info, () => `image ${name}: ${info.path}`);
      }),
    );
  image
    .command("pull")
    .description("download published images (kernel and root filesystem) into the cache, verified")
    .addArgument(new Argument("[names...]", "images to pull (default: debian)"))
    .addOption(ARCH_OPTION())
    .option("--all", "every image the release publishes for the arch")
    .option("--json", "print JSON")
    .action(
      action("image pull", async (out, names, options) => {
        const { DEFAULT_IMAGE, hostGuestArch, pullImages } = await import("../lib/index.ts");
        const progress = new Progress(options.json === true);
        const pulled = await pullImages({
          images: names.length > 0 ? names : [DEFAULT_IMAGE],
          all: options.all === true,
          arch: options.arch ?? hostGuestArch(),
          onProgress: (p) => progress.update(p.message, p.fraction),
        }).finally(() => progress.done());
        const data = pulled.map((p) => ({
          image: p.row.image, arch: p.row.arch, version: p.version, manifestSha256: p.manifestSha256,
          kernel: p.kernel.path, rootfs: p.rootfs.path, downloadedBytes: p.downloadedBytes,
        }));
        out.result(data, () => data.map((d) =>
          `image ${d.image} ${d.arch} (published ${d.version}): ${d.rootfs}${d.downloadedBytes === 0 ? " (already cached)" : ` (${(d.downloadedBytes / 2 ** 20).toFixed(1)} MiB downloaded)`}`,
        ).join("\n"));
      }),
    );
  image
    .command("list")
    .alias("ls")
    .description("list cached images: local builds and published downloads")
    .option("--json", "print JSON")
    .action(
      action("image list", async (out, _options) => {
        const { listCachedImages } = await import("../lib/index.ts");
        const images = await listCachedImages();
        out.result(images, () =>
          images.length === 0
            ? "No images cached. `smolvm image pull base` downloads the small one, `smolvm image build base` builds it."
            : table(["NAME", "ARCH", "SOURCE", "SIZE", "PATH"], images.map((i) => [
              i.name, i.arch, i.origin.kind === "local" ? "local build" : `published ${i.origin.version}`, i.sizeMiB === undefined ? "-" : `${i.sizeMiB} MiB`, i.path,
            ])),
        );
      }),
    );
  image
    .command("warm")
    .description("make an image's warm template: a booted sandbox's snapshot that creates of the same shape restore instead of booting (a coding agent's image: what its `start` restores)")
    .addArgument(new Argument("<name>", "image name"))
    .option("--cpus <n>", "virtual CPUs of the sandboxes it is for", integer("--cpus"))
    .option("--memory <mib>", "memory in MiB of the sandboxes it is for (default: a create's; a coding agent's image: its start's, 2048)", integer("--memory"))
    .option("--disk-size <size>", "root disk size of the sandboxes it is for, e.g. 8G (default: a create's; a coding agent's image: its start's, 8G)", diskSize)
    .option("--remove", "remove the image's warm template instead")
    .option("--json", "print JSON")
    .action(
      action("image warm", async (out, name, options) => {
        const { removeWarmTemplate, warmImage } = await import("../lib/index.ts");
        if (options.remove === true) {
          const removed = await removeWarmTemplate(name);
          out.result({ image: name, removed }, () => removed ? `removed the warm template of ${name}` : `${name} has no warm template`);
          return;
        }
        const progress = new Progress(options.json === true);
        const info = await warmImage(name, {
          ...(options.cpus === undefined ? {} : { vcpus: options.cpus }),
          ...(options.memory === undefined ? {} : { memoryMiB: options.memory }),
          ...(options.diskSize === undefined ? {} : { diskSizeMiB: options.diskSize }),
          onProgress: (p) => progress.update(p.message, p.fraction),
        }).finally(() => progress.done());
        out.result(info, () => `warm template of ${name}: ${info.vcpus} CPU, ${info.memoryMiB} MiB, ${(info.bytes / 2 ** 20).toFixed(1)} MiB stored`);
      }),
    );
  image
    .command("rm")
    .description("remove an image's cached builds and published copies")
    .addArgument(new Argument("<name>", "image name"))
    .option("--json", "print JSON")
    .action(
      action("image rm", async (out, name, _options) => {
        const { removeCachedImage } = await import("../lib/index.ts");
        const removed = await removeCachedImage(name);
        out.result({ name, removed }, () => `removed ${removed.length} build(s) of ${name}`);
      }),
    );
}
