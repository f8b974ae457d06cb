/** A sandbox's managed environment: `smolvm env set|unset|list`. */
import { Argument, type Command } from "@commander-js/extra-typings";
import { action } from "./action.ts";
import { commChannelFrom, commChannelOption } from "./options.ts";
import { table } from "./output.ts";

/** A value shown without revealing anything about it, not even its length. */
const MASK = "********";

export function registerEnv(program: Command): void {
  const env = program.command("env").description("environment variables every command in a sandbox sees (kept across stop/start)");

  env
    .command("set")
    .description("set variables (NAME=VALUE; quote values with spaces in your shell)")
    .addArgument(new Argument("<sandbox>", "name or id"))
    .addArgument(new Argument("<assignments...>", "NAME=VALUE pairs"))
    .addOption(commChannelOption())
    .option("--json", "print JSON")
    .action(
      action("env set", async (out, name, assignments, options) => {
        const { parseEnvAssignments, SmolVM } = await import("../lib/index.ts");
        const vars = parseEnvAssignments(assignments);
        const vm = await SmolVM.fromId(name, commChannelFrom(options));
        try {
          const all = await vm.env.set(vars);
          const set = Object.keys(vars);
          // Values are secrets more often than not: never echo them.
          out.result({ sandbox: vm.name, set, names: Object.keys(all) }, () => `set ${set.join(", ")} in ${vm.name}`);
        } finally {
          vm.close();
        }
      }),
    );

  env
    .command("unset")
    .description("remove variables")
    .addArgument(new Argument("<sandbox>", "name or id"))
    .addArgument(new Argument("<names...>", "variable names"))
    .addOption(commChannelOption())
    .option("--json", "print JSON")
    .action(
      action("env unset", async (out, name, names, options) => {
        const { checkEnvName, SmolVM } = await import("../lib/index.ts");
        names.forEach(checkEnvName);
        const vm = await SmolVM.fromId(name, commChannelFrom(options));
        try {
          const all = await vm.env.unset(names);
          out.result({ sandbox: vm.name, unset: names, names: Object.keys(all) }, () => `unset ${names.join(", ")} in ${vm.name}`);
        } finally {
          vm.close();
        }
      }),
    );

  env
    .command("list")
    .description("list the variables (values masked unless --show-values)")
    .addArgument(new Argument("<sandbox>", "name or id"))
    .option("--show-values", "print the values")
    .addOption(commChannelOption())
    .option("--json", "print JSON")
    .action(
      action("env list", async (out, name, options) => {
        const { SmolVM } = await import("../lib/index.ts");
        const vm = await SmolVM.fromId(name, commChannelFrom(options));
        try {
          const all = await vm.env.list();
          const show = options.showValues === true;
          const vars = Object.fromEntries(Object.entries(all).map(([k, v]) => [k, show ? v : MASK]));
          out.result({ sandbox: vm.name, vars, masked: !show }, () => {
            const names = Object.keys(vars);
            if (names.length === 0) return `No variables set in ${vm.name}. Set one with \`smolvm env set ${vm.name} NAME=VALUE\`.`;
            return table(["NAME", "VALUE"], names.map((k) => [k, JSON.stringify(vars[k]).slice(1, -1)]));
          });
        } finally {
          vm.close();
        }
      }),
    );
}
