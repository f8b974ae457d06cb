/** Copying files in and out of a sandbox: `smolvm file upload|download`. */
import { Argument, type Command } from "@commander-js/extra-typings";
import { action } from "./action.ts";
import { commChannelFrom, commChannelOption } from "./options.ts";
import { Progress } from "./output.ts";

/** Below this a transfer is over before a bar would be worth drawing. */
const PROGRESS_MIN_BYTES = 4 * 1024 * 1024;

function transferProgress(json: boolean, verb: string, name: string) {
  const progress = new Progress(json);
  return {
    onProgress: (done: number, total: number) => {
      if (total >= PROGRESS_MIN_BYTES) progress.update(`${verb} ${name} (${mib(done)} of ${mib(total)})`, total === 0 ? 1 : done / total);
    },
    done: () => progress.done(),
  };
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function octal(mode: number): string {
  return `0${mode.toString(8).padStart(3, "0")}`;
}

export function registerFile(program: Command): void {
  const file = program.command("file").description("copy files between this host and a sandbox");

  file
    .command("upload")
    .description("copy a local file into a sandbox (GUEST ending in / means into that directory); keeps the mode")
    .addArgument(new Argument("<sandbox>", "name or id"))
    .addArgument(new Argument("<local>", "the file on this host"))
    .addArgument(new Argument("<guest>", "absolute path in the sandbox"))
    .option("--no-create-dirs", "fail instead of creating missing guest directories")
    .addOption(commChannelOption())
    .option("--json", "print JSON")
    .action(
      action("file upload", async (out, name, local, guest, options) => {
        const { SmolVM } = await import("../lib/smolvm.ts");
        const { requireGuestPath } = await import("../lib/sandbox/_paths.ts");
        requireGuestPath(guest);
        const vm = await SmolVM.fromId(name, commChannelFrom(options));
        const progress = transferProgress(options.json === true, "uploading", local);
        try {
          const result = await vm.putFile(local, guest, { mkdirParents: options.createDirs, onProgress: progress.onProgress }).finally(progress.done);
          out.result({ sandbox: vm.name, ...result }, () => `uploaded ${local} to ${result.path} (${result.size} bytes, mode ${octal(result.mode)})`);
        } finally {
          vm.close();
        }
      }),
    );

  file
    .command("download")
    .description("copy a file out of a sandbox (LOCAL may be a directory); keeps the mode")
    .addArgument(new Argument("<sandbox>", "name or id"))
    .addArgument(new Argument("<guest>", "absolute path in the sandbox"))
    .addArgument(new Argument("<local>", "where to put it on this host"))
    .option("--no-create-dirs", "fail instead of creating missing local directories")
    .addOption(commChannelOption())
    .option("--json", "print JSON")
    .action(
      action("file download", async (out, name, guest, local, options) => {
        const { SmolVM } = await import("../lib/smolvm.ts");
        const { requireGuestPath } = await import("../lib/sandbox/_paths.ts");
        requireGuestPath(guest, { file: true });
        const vm = await SmolVM.fromId(name, commChannelFrom(options));
        const progress = transferProgress(options.json === true, "downloading", guest);
        try {
          const result = await vm.getFile(guest, local, { mkdirParents: options.createDirs, onProgress: progress.onProgress }).finally(progress.done);
          out.result({ sandbox: vm.name, ...result }, () => `downloaded ${guest} to ${result.path} (${result.size} bytes, mode ${octal(result.mode)})`);
        } finally {
          vm.close();
        }
      }),
    );
}
