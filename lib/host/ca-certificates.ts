/**
 * Certificate authorities this host trusts beyond the public ones, for downloads that run in an
 * image build or a sandbox but must work where the host's do (behind a TLS-inspecting proxy, a
 * company mirror): `SMOLVM_EXTRA_CA_CERTS` (a PEM file) when set, else the certificates an
 * administrator added to Debian's and Ubuntu's local store, /usr/local/share/ca-certificates.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

const LOCAL_STORE = "/usr/local/share/ca-certificates";
const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----/g;

/** The PEM certificates, concatenated; undefined when there are none. */
export async function hostExtraCaCertificates(env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const named = env.SMOLVM_EXTRA_CA_CERTS?.trim();
  const files = named ? [named] : await localStoreFiles(LOCAL_STORE);
  const blocks: string[] = [];
  for (const file of files) {
    const text = await readFile(file, "utf8").catch(() => "");
    blocks.push(...(text.match(PEM_BLOCK) ?? []));
  }
  return blocks.length === 0 ? undefined : `${blocks.join("\n")}\n`;
}

async function localStoreFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (at: string, depth: number): Promise<void> => {
    const entries = await readdir(at, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      const path = join(at, entry.name);
      if (entry.isDirectory() && depth < 3) await walk(path, depth + 1);
      else if (entry.name.endsWith(".crt")) found.push(path);
    }
  };
  await walk(dir, 0);
  return found.sort();
}
