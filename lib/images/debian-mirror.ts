/**
 * Which Debian mirror mmdebstrap should use: the one apt on this host is configured with (so a
 * machine behind a proxy or with a local mirror works as apt does), else deb.debian.org.
 * `SMOLVM_DEBIAN_MIRROR` overrides the main archive URI.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export interface AptSource {
  uri: string;
  suites: string[];
  components: string[];
}

/** Parses one-line (`deb URI SUITE COMP...`) and deb822 (`Types: deb` stanzas) source files. */
export function parseAptSources(text: string): AptSource[] {
  const sources: AptSource[] = [];
  if (/^\s*Types\s*:/im.test(text)) {
    for (const stanza of text.split(/\n\s*\n/)) {
      const fields: Record<string, string> = {};
      let last = "";
      for (const raw of stanza.split("\n")) {
        if (raw.startsWith("#")) continue;
        const cont = /^\s+(\S.*)$/.exec(raw);
        if (cont && last) {
          fields[last] += ` ${cont[1]}`;
          continue;
        }
        const m = /^([A-Za-z-]+)\s*:\s*(.*)$/.exec(raw);
        if (m) fields[(last = m[1]!.toLowerCase())] = m[2]!.trim();
      }
      if (!(fields.types ?? "").split(/\s+/).includes("deb")) continue;
      if (/^\s*no\s*$/i.test(fields.enabled ?? "")) continue;
      const words = (s: string | undefined) => (s ?? "").split(/\s+/).filter(Boolean);
      for (const uri of words(fields.uris)) {
        sources.push({ uri, suites: words(fields.suites), components: words(fields.components) });
      }
    }
    return sources;
  }
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*$/, "").trim();
    // Drop `[arch=amd64 signed-by=...]` options.
    const words = line.replace(/\[[^\]]*\]/, " ").split(/\s+/).filter(Boolean);
    if (words[0] !== "deb" || words.length < 3) continue;
    sources.push({ uri: words[1]!, suites: [words[2]!], components: words.slice(3) });
  }
  return sources;
}

/**
 * mmdebstrap's source lines for `suite` and its -updates and -security suites, taken from the
 * host's apt sources where they list those suites, else from deb.debian.org.
 */
export function debianSourceLines(
  suite: string,
  components: readonly string[],
  hostSources: readonly AptSource[],
  mirrorOverride?: string,
): string[] {
  const pick = (s: string, fallback: string): string => {
    const found = hostSources.find((src) => src.suites.includes(s) && src.components.includes("main"));
    return (found?.uri ?? fallback).replace(/\/+$/, "");
  };
  const main = mirrorOverride?.replace(/\/+$/, "") ?? pick(suite, "http://deb.debian.org/debian");
  const updates = mirrorOverride?.replace(/\/+$/, "") ?? pick(`${suite}-updates`, main);
  const security = pick(`${suite}-security`, "http://deb.debian.org/debian-security");
  const comps = components.join(" ");
  return [
    `deb ${main} ${suite} ${comps}`,
    `deb ${updates} ${suite}-updates ${comps}`,
    `deb ${security} ${suite}-security ${comps}`,
  ];
}

/** The host's apt sources (empty when there is no apt). */
export function readHostAptSources(root = "/etc/apt"): AptSource[] {
  const texts: string[] = [];
  try {
    texts.push(readFileSync(join(root, "sources.list"), "utf8"));
  } catch { /* none */ }
  try {
    for (const name of readdirSync(join(root, "sources.list.d")).sort()) {
      if (name.endsWith(".list") || name.endsWith(".sources")) {
        texts.push(readFileSync(join(root, "sources.list.d", name), "utf8"));
      }
    }
  } catch { /* none */ }
  return texts.flatMap(parseAptSources);
}
