import { describe, expect, test } from "bun:test";
import { debianSourceLines, parseAptSources } from "../../../lib/images/debian-mirror.ts";

const DEB822 = `Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm
Components: main
`;

describe("Debian mirror selection", () => {
  test("reads deb822 stanzas, ignoring deb-src", () => {
    expect(parseAptSources(DEB822)).toEqual([
      { uri: "http://mirror.example/debian", suites: ["bookworm", "bookworm-updates"], components: ["main"] },
      { uri: "http://mirror.example/debian-security", suites: ["bookworm-security"], components: ["main"] },
    ]);
  });

  test("reads one-line sources with options and comments", () => {
    expect(parseAptSources("# comment\ndeb [arch=amd64 signed-by=/k.gpg] https://m.example/debian/ bookworm main contrib\ndeb-src x y z\n"))
      .toEqual([{ uri: "https://m.example/debian/", suites: ["bookworm"], components: ["main", "contrib"] }]);
  });

  test("uses the host's mirrors for the suite, its updates and security, and skips third-party repos", () => {
    const host = [
      { uri: "https://packages.cloud.example/apt", suites: ["cloud-sdk-bookworm"], components: ["main"] },
      ...parseAptSources(DEB822),
    ];
    expect(debianSourceLines("bookworm", ["main"], host)).toEqual([
      "deb http://mirror.example/debian bookworm main",
      "deb http://mirror.example/debian bookworm-updates main",
      "deb http://mirror.example/debian-security bookworm-security main",
    ]);
  });

  test("falls back to deb.debian.org, and SMOLVM_DEBIAN_MIRROR replaces the main archive", () => {
    expect(debianSourceLines("bookworm", ["main"], [])).toEqual([
      "deb http://deb.debian.org/debian bookworm main",
      "deb http://deb.debian.org/debian bookworm-updates main",
      "deb http://deb.debian.org/debian-security bookworm-security main",
    ]);
    expect(debianSourceLines("bookworm", ["main"], [], "http://local/debian/")[0]).toBe("deb http://local/debian bookworm main");
  });
});
