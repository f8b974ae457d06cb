/** A sandbox's egress policy: `smolvm network allow|deny`. */
import { Argument, type Command } from "@commander-js/extra-typings";
import { action } from "./action.ts";

export function registerNetwork(program: Command): void {
  const network = program.command("network").description("where a sandbox may connect (applied at once while it runs)");
  for (const verb of ["allow", "deny"] as const) {
    network
      .command(verb)
      .description(verb === "allow"
        ? "let a sandbox reach these hosts: DNS names, *.domain, addresses, CIDR ranges, or \"internet\" (every public address)"
        : "keep a sandbox from these hosts (a name stops resolving; \"internet\" closes every public address)")
      .addArgument(new Argument("<sandbox>", "name or id"))
      .addArgument(new Argument("<hosts...>", "DNS names, *.domain, addresses, CIDR ranges, or internet"))
      .option("--json", "print JSON")
      .action(
        action(`network ${verb}`, async (out, name, hosts, _options) => {
          const { SmolVM } = await import("../lib/index.ts");
          const vm = await SmolVM.fromId(name);
          try {
            const policy = await vm.network.update(verb === "allow" ? { allow: hosts } : { deny: hosts });
            out.result({ sandbox: vm.name, ...policy }, () => {
              const allow = policy.allowHosts.length === 0 ? "nothing" : policy.allowHosts.join(", ");
              return `${vm.name} may reach: ${allow}${policy.denyHosts.length === 0 ? "" : `; never: ${policy.denyHosts.join(", ")}`}`;
            });
          } finally {
            vm.close();
          }
        }),
      );
  }
}
