/** Making a release's published images: `smolvm release build`, `smolvm release keygen`. */
import { Option, type Command } from "@commander-js/extra-typings";
import { action } from "./action.ts";
import { Progress } from "./output.ts";

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function registerRelease(program: Command): void {
  const release = program.command("release").description("build and sign the kernel and images a release publishes");
  release
    .command("build")
    .description("build (or take from the cache) the kernel and images per arch, compress them, and write a signed manifest.json")
    .requiredOption("--out <dir>", "the release directory to write")
    .addOption(new Option("--arch <arch>", "a guest architecture (repeatable; default: this host's)").choices(["x86_64", "aarch64"] as const).argParser(collect))
    .option("--image <name>", "an image (repeatable; default: every recipe)", collect)
    .option("--key <file>", "the ed25519 signing key, PEM (default: $SMOLVM_RELEASE_KEY)")
    .option("--unsigned", "write no signature: clients must pin the manifest's SHA-256")
    .option("--json", "print JSON")
    .action(
      action("release build", async (out, options) => {
        const { buildRelease, hostGuestArch, InvalidInputError, knownImageNames, parseGuestArch, readSigningKey } = await import("../lib/index.ts");
        const keyFile = options.key ?? (process.env.SMOLVM_RELEASE_KEY || undefined);
        if (keyFile !== undefined && options.unsigned === true) {
          throw new InvalidInputError("Cannot build the release: --unsigned and a signing key were both given", {
            hint: "drop --unsigned, or the key (--key / SMOLVM_RELEASE_KEY)",
          });
        }
        if (keyFile === undefined && options.unsigned !== true) {
          throw new InvalidInputError("Cannot build the release: no signing key", {
            hint: "pass --key FILE or set SMOLVM_RELEASE_KEY (make one with `smolvm release keygen --out FILE`), or --unsigned",
          });
        }
        const signingKeyPem = keyFile === undefined ? undefined : await readSigningKey(keyFile);
        const arches = [...new Set((options.arch ?? [hostGuestArch()]).map(parseGuestArch))];
        const images = [...new Set(options.image ?? (await knownImageNames()))];
        const progress = new Progress(options.json === true);
        const result = await buildRelease({
          outDir: options.out,
          arches,
          images,
          ...(signingKeyPem === undefined ? {} : { signingKeyPem }),
          onProgress: (step, fraction) => progress.update(`release: ${step}`, fraction),
        }).finally(() => progress.done());
        out.result(result, () => [
          `release ${result.version} in ${result.outDir}: ${result.rows} rows, ${result.files.length} files`,
          ...result.files.map((f) => `  ${f.file}  ${(f.size / 2 ** 20).toFixed(1)} MiB`),
          `manifest.json SHA-256: ${result.manifestSha256}`,
          result.keyId === null
            ? "unsigned: a mirror of it needs SMOLVM_IMAGES_SHA256 set to the SHA-256 above"
            : `signed with key ${result.keyId}`,
        ].join("\n"));
      }),
    );
  release
    .command("keygen")
    .description("make an ed25519 key pair for signing releases (the private key goes to --out, mode 0600)")
    .requiredOption("--out <file>", "where to write the private key (PEM); must not exist")
    .option("--json", "print JSON")
    .action(
      action("release keygen", async (out, options) => {
        const { generateSigningKey, smolError } = await import("../lib/index.ts");
        const { writeFile } = await import("node:fs/promises");
        const key = await generateSigningKey();
        await writeFile(options.out, key.privateKeyPem, { mode: 0o600, flag: "wx" }).catch((cause: NodeJS.ErrnoException) => {
          throw smolError(cause.code === "EEXIST" ? "ALREADY_EXISTS" : "IO_ERROR", `Cannot write the key "${options.out}": ${cause.message}`, {
            cause,
            hint: cause.code === "EEXIST" ? "choose another path; an existing key is never overwritten" : "check the directory",
          });
        });
        const data = { privateKeyPath: options.out, publicKey: key.publicKey, keyId: key.id };
        out.result(data, () => [
          `private key: ${options.out} (keep it secret; the release workflow reads it through SMOLVM_RELEASE_KEY)`,
          `public key:  ${key.publicKey}  (id ${key.id})`,
          `for a mirror: SMOLVM_IMAGES_KEY=${key.publicKey}`,
        ].join("\n"));
      }),
    );
}
