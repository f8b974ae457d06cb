/**
 * Every address this host holds, on every interface, in this network namespace: each is a door
 * to host services (a server bound to 0.0.0.0 answers on all of them), so none may be reachable
 * from a sandbox, whether private or public, whatever the policy allows.
 */
import { networkInterfaces } from "node:os";
import { parseCidr, type Cidr } from "./addresses.ts";

export function hostAddresses(): Cidr[] {
  const found: Cidr[] = [];
  for (const entries of Object.values(networkInterfaces())) {
    for (const entry of entries ?? []) {
      const single = parseCidr(entry.address.split("%")[0]!);
      if (single !== undefined) found.push(single);
    }
  }
  return found;
}
