/** Copying files in and out of a sandbox: `smolvm file upload|download`. */
import { Argument, type Command } from "@commander-js/extra-typings";
import { stat } from "node:fs/promises";
import { basename, join, posix, resolve } from "node:path";
import type { DirTransferResult } from "../lib/index.ts";
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

async function isLocalDirectory(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isDirectory(), () => false);
}

function describeTree(verb: string, from: string, tree: DirTransferResult): string {
  const lines = [`${verb} ${from} to ${tree.path} (${tree.files} files, ${tree.directories} directories, ${tree.symlinks} symlinks, ${tree.bytes} bytes)`];
  for (const skipped of tree.skipped) lines.push(`  skipped ${skipped.path}: ${skipped.reason}`);
  return lines.join("\n");
}

export function registerFile(program: Command): void {
  const file = program.command("file").description("copy files between this host and a sandbox");

  file
    .command("upload")
    .description("copy a local file or directory into a sandbox (GUEST ending in / means into that directory); keeps modes and symlinks")
    .addArgument(new Argument("<sandbox>", "name or id"))
    .addArgument(new Argument("<local>", "the file or directory on this host"))
    .addArgument(new Argument("<guest>", "absolute path in the sandbox"))
    .option("--no-create-dirs", "fail instead of creating missing guest directories")
    .addOption(commChannelOption())
    .option("--json", "print JSON")
    .action(
      action("file upload", async (out, name, local, guest, options) => {
        const { SmolVM } = await import("../lib/index.ts");
        const vm = await SmolVM.fromId(name, commChannelFrom(options));
        const progress = transferProgress(options.json === true, "uploading", local);
        try {
          if (await isLocalDirectory(local)) {
            const target = guest.endsWith("/") ? `${guest}${basename(resolve(local))}` : guest;
            const tree = await vm.files.uploadDir(local, target, { onProgress: progress.onProgress }).finally(progress.done);
            out.result({ sandbox: vm.name, ...tree }, () => describeTree("uploaded", local, tree));
            return;
          }
          const result = await vm.files.upload(local, guest, { mkdirParents: options.createDirs, onProgress: progress.onProgress }).finally(progress.done);
          out.result({ sandbox: vm.name, ...result }, () => `uploaded ${local} to ${result.path} (${result.size} bytes, mode ${octal(result.mode)})`);
        } finally {
          vm.close();
        }
      }),
    );

  file
    .command("download")
    .description("copy a file or directory out of a sandbox (LOCAL may be a directory); keeps modes and safe symlinks")
    .addArgument(new Argument("<sandbox>", "name or id"))
    .addArgument(new Argument("<guest>", "absolute path in the sandbox"))
    .addArgument(new Argument("<local>", "where to put it on this host"))
    .option("--no-create-dirs", "fail instead of creating missing local directories")
    .addOption(commChannelOption())
    .option("--json", "print JSON")
    .action(
      action("file download", async (out, name, guest, local, options) => {
        const { SmolVM } = await import("../lib/index.ts");
        const vm = await SmolVM.fromId(name, commChannelFrom(options));
        const progress = transferProgress(options.json === true, "downloading", guest);
        const directory = async () => {
          const into = local.endsWith("/") || (await isLocalDirectory(local)) ? join(local, posix.basename(guest.replace(/\/+$/, "")) || "root") : local;
          const tree = await vm.files.downloadDir(guest, into).finally(progress.done);
          out.result({ sandbox: vm.name, ...tree }, () => describeTree("downloaded", guest, tree));
        };
        try {
          if (guest.endsWith("/")) return await directory();
          // A guest directory is only known as one when reading it as a file fails.
          const result = await vm.files.download(guest, local, { mkdirParents: options.createDirs, onProgress: progress.onProgress }).catch((error: unknown) => {
            if ((error as { details?: { agentCode?: string } }).details?.agentCode === "IS_DIRECTORY") return undefined;
            throw error;
          }).finally(progress.done);
          if (result === undefined) return await directory();
          out.result({ sandbox: vm.name, ...result }, () => `downloaded ${guest} to ${result.path} (${result.size} bytes, mode ${octal(result.mode)})`);
        } finally {
          vm.close();
        }
      }),
    );
}
