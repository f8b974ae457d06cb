/**
 * The bench's test network (lib/bench/netlab.ts: two namespaces of the test's own, root only)
 * with every door into the "host" a guest might try, and servers behind them:
 *
 *   "internet" namespace                      "host" namespace (where smolvm runs)
 *   198.18.0.1 ──────────── veth ──────────── 198.18.0.2, default route via 198.18.0.1
 *   198.18.1.10  http "internet"              203.0.113.7 (a public address of the host's, on lo)
 *   198.18.1.11  http "other"                 10.99.0.1/24 (a private host interface)
 *   198.18.1.53  dns (the host's resolver)    http "host" on 0.0.0.0:8081 (every host address)
 *   169.254.169.254 http "metadata"           http "host-loopback" on 127.0.0.1:8082
 *
 * The host namespace's /etc/resolv.conf (bind-mounted by `ip netns exec`) names 198.18.1.53.
 */
import { spawnSync, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { createNetLab, netLabUnavailable } from "../../bench/netlab.ts";

export const LAB = {
  internet: "198.18.1.10",
  other: "198.18.1.11",
  dns: "198.18.1.53",
  metadata: "169.254.169.254",
  router: "198.18.0.1",
  hostUplink: "198.18.0.2",
  hostPublic: "203.0.113.7",
  hostPrivate: "10.99.0.1",
  hostAnyPort: 8081,
  hostLoopbackPort: 8082,
  zone: "internet.test=198.18.1.10;other.test=198.18.1.11;metadata.test=169.254.169.254;host.test=198.18.0.2;" +
    `lan.test=10.99.0.1;big.test=${Array.from({ length: 40 }, (_, i) => `198.18.2.${i + 1}`).join(",")}`,
} as const;

const ROOT = join(import.meta.dirname, "..", "..");

export interface Lab {
  inet: string;
  host: string;
  /** argv run inside the host namespace (with its resolv.conf). */
  inHost(argv: readonly string[]): string[];
  close(): void;
}

export function labUnavailable(): string | undefined {
  return netLabUnavailable();
}

function run(argv: string[]): void {
  const result = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`${argv.join(" ")}: ${result.stderr}`);
}

/** Resolves once a helper prints its ready line. */
function ready(child: ChildProcess, line: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes(line)) resolve();
    });
    child.once("exit", (code) => reject(new Error(`a lab server exited (${code}) before it was ready`)));
  });
}

export async function createLab(): Promise<Lab> {
  const lab = createNetLab({
    serverAddresses: [LAB.other, LAB.dns, LAB.metadata, ...Array.from({ length: 40 }, (_, n) => `198.18.2.${n + 1}`)],
    resolver: LAB.dns,
  });
  try {
    const h = (...args: string[]) => run(["ip", "-n", lab.host, ...args]);
    h("addr", "add", `${LAB.hostPublic}/32`, "dev", "lo");
    h("link", "add", "hx0", "type", "veth", "peer", "name", "hx1");
    h("addr", "add", `${LAB.hostPrivate}/24`, "dev", "hx0");
    h("link", "set", "hx0", "up");
    h("link", "set", "hx1", "up");
    const helper = (ns: "inet" | "host", args: string[], line: string) =>
      ready(lab.start(ns, [process.execPath, join(ROOT, "test", "helpers", args[0]!), ...args.slice(1)]), line);
    await Promise.all([
      helper("inet", ["http-server.ts", "internet", `${LAB.internet}:80`], "http ready"),
      helper("inet", ["http-server.ts", "other", `${LAB.other}:80`], "http ready"),
      helper("inet", ["http-server.ts", "metadata", `${LAB.metadata}:80`], "http ready"),
      helper("inet", ["dns-server.ts", LAB.dns, "53", LAB.zone], "dns ready"),
      helper("host", ["http-server.ts", "host", `0.0.0.0:${LAB.hostAnyPort}`], "http ready"),
      helper("host", ["http-server.ts", "host-loopback", `127.0.0.1:${LAB.hostLoopbackPort}`], "http ready"),
    ]);
  } catch (error) {
    lab.close();
    throw error;
  }
  return { inet: lab.inet, host: lab.host, inHost: (argv) => lab.inside("host", argv), close: lab.close };
}
