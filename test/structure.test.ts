/**
 * The shape of the code, read from the code: the import graph between lib/ folders has no
 * cycle, cmd/ reaches lib/ only through the SDK's exports, lib/ reaches nothing outside itself,
 * no source file grows past 500 lines, and no two exported types of lib/ share a name.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");

/**
 * Modules of lib/ that cmd/ may import besides lib/index.ts and the modules index.ts re-exports
 * whole (`export * from`), each with the reason. Keep it tiny.
 */
const CMD_ALLOWED: Record<string, string> = {
  "lib/supervisor/main.ts": "the hidden `__supervise` command is the supervisor process's own entry, not an SDK operation",
};

function sourceFiles(dir: string, pattern = /\.ts$/): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (name === "node_modules" || name === "build" || name.startsWith(".")) return [];
    return statSync(path).isDirectory() ? sourceFiles(path, pattern) : pattern.test(name) ? [path] : [];
  });
}

/** Every module a file imports or re-exports, statically or dynamically, types included, as repo paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const specifiers = [
    ...text.matchAll(/^\s*(?:import|export)\s+(?:type\s+)?(?:[\w*${}\s,]+?\s+from\s+)?"([^"]+)"/gm),
    ...text.matchAll(/\bimport\(\s*"([^"]+)"\s*\)/g),
  ].map((m) => m[1]!);
  return specifiers.filter((s) => s.startsWith(".")).map((s) => relative(root, resolve(dirname(file), s)));
}

/** lib/x/y.ts belongs to the folder lib/x; a file directly in lib/ is its own node. */
function nodeOf(path: string): string {
  const parts = path.split("/");
  return parts.length > 2 ? `${parts[0]}/${parts[1]}` : path;
}

function cyclesOf(edges: Map<string, Set<string>>): string[][] {
  const found: string[][] = [];
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  let next = 0;
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const v of edges.keys()) if (!index.has(v)) visit(v);
  return found;
}

describe("the import graph", () => {
  const libFiles = sourceFiles(join(root, "lib"));

  test("no cycle between lib/ folders", () => {
    const edges = new Map<string, Set<string>>();
    const why = new Map<string, string>();
    for (const file of libFiles) {
      const from = nodeOf(relative(root, file));
      for (const target of importsOf(file)) {
        const to = nodeOf(target);
        if (from === to || !to.startsWith("lib/")) continue;
        if (!edges.has(from)) edges.set(from, new Set());
        edges.get(from)!.add(to);
        why.set(`${from} -> ${to}`, relative(root, file));
      }
    }
    const cycles = cyclesOf(edges).map((cycle) =>
      `${cycle.join(" <-> ")} (${cycle.flatMap((a) => cycle.filter((b) => why.has(`${a} -> ${b}`)).map((b) => `${a} -> ${b} in ${why.get(`${a} -> ${b}`)}`)).join("; ")})`,
    );
    expect(cycles).toEqual([]);
  });

  test("lib/ imports no code outside lib/ (data files it embeds aside)", () => {
    const outside = libFiles.flatMap((file) =>
      importsOf(file).filter((target) => target.endsWith(".ts") && !target.startsWith("lib/")).map((target) => `${relative(root, file)} -> ${target}`),
    );
    expect(outside).toEqual([]);
  });

  test("cmd/ reaches lib/ only through the SDK's exports and a justified allow-list", () => {
    const index = readFileSync(join(root, "lib", "index.ts"), "utf8");
    const exported = new Set(["lib/index.ts", ...[...index.matchAll(/^export \* from "\.\/([^"]+)";/gm)].map((m) => `lib/${m[1]}`)]);
    const offending = sourceFiles(join(root, "cmd")).flatMap((file) =>
      importsOf(file)
        .filter((target) => target.startsWith("lib/") && !exported.has(target) && !(target in CMD_ALLOWED))
        .map((target) => `${relative(root, file)} -> ${target}`),
    );
    expect(offending).toEqual([]);
    for (const reason of Object.values(CMD_ALLOWED)) expect(reason.length).toBeGreaterThan(20);
  });
});

test("no source file is over 500 lines", () => {
  const files = [
    ...["lib", "cmd", "bench", "scripts", "test"].flatMap((dir) => sourceFiles(join(root, dir))),
    ...sourceFiles(join(root, "guest-agent"), /\.[ch]$/),
    join(root, "main.ts"),
  ];
  const long = files
    .map((file) => ({ file: relative(root, file), lines: readFileSync(file, "utf8").split("\n").length - 1 }))
    .filter(({ lines }) => lines > 500)
    .map(({ file, lines }) => `${file}: ${lines} lines`);
  expect(long).toEqual([]);
});

test("no two exported types or classes of lib/ share a name", () => {
  const seen = new Map<string, string[]>();
  for (const file of sourceFiles(join(root, "lib"))) {
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/^export (?:declare )?(?:interface|type|class|abstract class) (\w+)/gm)) {
      seen.set(m[1]!, [...(seen.get(m[1]!) ?? []), relative(root, file)]);
    }
  }
  // A zod schema and the type inferred from it share their name on purpose (one file, one thing).
  const shared = [...seen].filter(([, files]) => new Set(files).size > 1).map(([name, files]) => `${name}: ${files.join(", ")}`);
  expect(shared).toEqual([]);
});
