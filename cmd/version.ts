import type { Command } from "@commander-js/extra-typings";
import { versionInfo } from "../lib/version.ts";
import { action } from "./action.ts";

export function registerVersion(program: Command): void {
  program
    .command("version")
    .description("print version, commit, runtime and build target")
    .option("--check", "compare with the latest release (SMOLVM_INSTALL_URL or the project's releases)")
    .option("--json", "print JSON")
    .action(
      action("version", async (out, options) => {
        const info = versionInfo();
        const lines = [
          `smolvm ${info.version}`,
          `commit:  ${info.commit}`,
          `runtime: ${info.runtime}`,
          `target:  ${info.target} (${info.platform}-${info.arch})`,
        ];
        if (options.check !== true) {
          out.result(info, () => lines.join("\n"));
          return;
        }
        const { checkForUpdate, releasesUrl, upgradeCommand } = await import("../lib/index.ts");
        const baseUrl = await releasesUrl();
        const check = await checkForUpdate({ current: info.version, baseUrl });
        const upgrade = check.status === "update-available" ? await upgradeCommand({ target: info.target, execPath: process.execPath, baseUrl }) : undefined;
        out.result({ ...info, check: upgrade === undefined ? check : { ...check, upgrade } }, () => {
          switch (check.status) {
            case "update-available":
              return [...lines, "", `smolvm ${check.latest} is available (this is ${check.current}); upgrade: ${upgrade}`].join("\n");
            case "up-to-date":
              return [...lines, "", `This is the latest release (${check.latest}).`].join("\n");
            case "ahead":
              return [...lines, "", `This build is newer than the latest release (${check.latest}).`].join("\n");
            case "unknown":
              return [...lines, "", `Cannot tell whether a newer release exists: ${check.reason}`].join("\n");
          }
        });
      }),
    );
}
