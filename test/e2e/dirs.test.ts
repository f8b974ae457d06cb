/**
 * Directories in and out of real VMs: one suite over each channel on a Debian sandbox (GNU tar
 * in the guest), a BusyBox sandbox (its tar), the CLI, and a guest that lies: its `tar` is
 * replaced by a script that sends a crafted stream, which the host must refuse.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureImage } from "../../lib/images/build.ts";
import { SmolVM } from "../../lib/smolvm.ts";
import { NotFoundError } from "../../lib/errors.ts";
import type { CommChannel } from "../../lib/channels/types.ts";
import { encodeHeader, END_OF_ARCHIVE, padding } from "../../lib/tar/header.ts";
import { envelope, runCli } from "../helpers/cli.ts";
import { cleanupAfterAll, prepareArtifacts } from "../helpers/vm.ts";

setDefaultTimeout(300_000);

const FILES = 2000;
let work: string;
let tree: string;
let debian: SmolVM;

/** 2,000 files in 40 directories, plus the cases that matter. */
function makeTree(root: string): void {
  for (let d = 0; d < 40; d++) {
    mkdirSync(join(root, `pkg${d}`), { recursive: true });
    for (let f = 0; f < FILES / 40; f++) writeFileSync(join(root, `pkg${d}`, `f${f}.txt`), `file ${d}/${f}\n`.repeat(f % 7 + 1));
  }
  mkdirSync(join(root, "empty/nested-empty"), { recursive: true });
  chmodSync(join(root, "empty"), 0o750);
  writeFileSync(join(root, "pkg0/run.sh"), "#!/bin/sh\necho run\n");
  chmodSync(join(root, "pkg0/run.sh"), 0o755);
  chmodSync(join(root, "pkg0/f1.txt"), 0o600);
  symlinkSync("pkg0/run.sh", join(root, "link-in"));
  symlinkSync("/etc/hostname", join(root, "link-out"));
  const long = join(root, `${"long-directory-name/".repeat(8)}and-a-file-name-past-the-ustar-limit.txt`);
  mkdirSync(join(long, ".."), { recursive: true });
  writeFileSync(long, "long\n");
}

/** type, mode, content hash or link target of every entry, by relative path. */
function snapshot(root: string, skip: string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const path = rel === "" ? name : `${rel}/${name}`;
      if (skip.includes(path)) continue;
      const info = lstatSync(join(root, path));
      const mode = (info.mode & 0o777).toString(8);
      if (info.isSymbolicLink()) out[path] = `link ${readlinkSync(join(root, path))}`;
      else if (info.isDirectory()) {
        out[path] = `dir ${mode}`;
        walk(path);
      } else out[path] = `file ${mode} ${createHash("sha256").update(readFileSync(join(root, path))).digest("hex").slice(0, 16)}`;
    }
  };
  walk("");
  return out;
}

beforeAll(async () => {
  await prepareArtifacts();
  await ensureImage("debian");
  work = mkdtempSync(join(tmpdir(), "smolvm-dirs-"));
  tree = join(work, "tree");
  mkdirSync(tree);
  makeTree(tree);
  debian = await SmolVM.create({ name: "dirs", image: "debian", commChannel: "ssh" });
}, 30 * 60_000);
afterAll(() => {
  debian?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});
cleanupAfterAll();

describe.each(["vsock", "ssh"] as CommChannel[])("directories over %s", (commChannel) => {
  let vm: SmolVM;
  beforeAll(async () => {
    vm = await SmolVM.fromId("dirs", { commChannel });
  });
  afterAll(() => vm?.close());

  test("2,000 files with modes, empty dirs and symlinks go in and come back the same", async () => {
    const guest = `/srv/${commChannel}`;
    const up = await vm.files.uploadDir(tree, guest);
    expect(up).toMatchObject({ path: guest, files: FILES + 2, symlinks: 2 });
    const inside = await vm.commands.run(["sh", "-c", `cd ${guest} && find . -type f | wc -l && stat -c '%a %F' empty pkg0/run.sh pkg0/f1.txt && readlink link-out && ls empty`]);
    expect(inside.stdout.split("\n")).toEqual([`${FILES + 2}`, "750 directory", "755 regular file", "600 regular file", "/etc/hostname", "nested-empty", ""]);

    const back = join(work, `back-${commChannel}`);
    const down = await vm.files.downloadDir(guest, back);
    expect(down.files).toBe(FILES + 2);
    // The link to /etc/hostname went in as a link, and is not recreated on the host.
    expect(down.skipped).toEqual([{ path: "link-out", reason: 'a symlink to "/etc/hostname", outside the target' }]);
    expect(snapshot(back)).toEqual(snapshot(tree, ["link-out"]));
  });

  test("a download into an existing directory merges, and a missing guest directory is NotFound", async () => {
    const into = join(work, `merge-${commChannel}`);
    mkdirSync(into);
    writeFileSync(join(into, "keep.txt"), "mine\n");
    await vm.commands.run(["sh", "-c", "mkdir -p /srv/small && echo new > /srv/small/new.txt"]);
    await vm.files.downloadDir("/srv/small", into);
    expect(readdirSync(into).sort()).toEqual(["keep.txt", "new.txt"]);
    const missing = await vm.files.downloadDir("/srv/nope", join(work, "nope")).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(NotFoundError);
    expect(existsSync(join(work, "nope"))).toBe(false);
    expect(readdirSync(work).filter((n) => n.includes(".smolvm-"))).toEqual([]);
  });
});

test("a guest whose tar lies cannot write outside the target", async () => {
  // The crafted stream: a harmless file, then one climbing out with "..".
  const data = Buffer.from("pwned\n");
  const entry = (name: string) => Buffer.concat([encodeHeader({ name, type: "file", mode: 0o644, size: data.length, mtime: 0 }), data, padding(data.length)]);
  const evil = Buffer.concat([entry("ok.txt"), entry("../escaped.txt"), END_OF_ARCHIVE]);
  await debian.files.write("/tmp/evil.tar", evil);
  await debian.files.write("/usr/local/bin/tar", "#!/bin/sh\ncat /tmp/evil.tar\n", { mode: 0o755 });
  try {
    const target = join(work, "victim", "target");
    mkdirSync(join(work, "victim"));
    const error = (await debian.files.downloadDir("/srv", target).catch((e: unknown) => e)) as Error;
    expect(error.message).toContain("climbs out of the target");
    expect(readdirSync(join(work, "victim"))).toEqual([]);
  } finally {
    await debian.commands.run("rm -f /usr/local/bin/tar");
  }
});

test("the busybox image's tar takes the same stream", async () => {
  const vm = await SmolVM.create({ image: "base" });
  try {
    const small = join(work, "small");
    mkdirSync(join(small, "d/empty"), { recursive: true });
    writeFileSync(join(small, "d/x.sh"), "echo\n");
    chmodSync(join(small, "d/x.sh"), 0o741);
    symlinkSync("d/x.sh", join(small, "l"));
    const long = `${"n".repeat(120)}.txt`;
    writeFileSync(join(small, long), "long\n");
    await vm.files.uploadDir(small, "/opt/small");
    const check = await vm.commands.run(["sh", "-c", `cd /opt/small && stat -c %a d/x.sh && readlink l && cat ${long} && ls -d d/empty`]);
    expect(check.stdout).toBe("741\nd/x.sh\nlong\nd/empty\n");
    const back = join(work, "small-back");
    await vm.files.downloadDir("/opt/small", back);
    expect(snapshot(back)).toEqual(snapshot(small));
  } finally {
    await vm.delete();
  }
});

test("smolvm file upload and download take directories", async () => {
  const up = await runCli(["file", "upload", "dirs", tree, "/cli/", "--json"], { timeoutMs: 240_000 });
  expect(up.code).toBe(0);
  expect(envelope(up).data).toMatchObject({ sandbox: "dirs", path: "/cli/tree", files: FILES + 2 });
  const local = join(work, "cli-down");
  mkdirSync(local);
  const down = await runCli(["file", "download", "dirs", "/cli/tree", local, "--json"], { timeoutMs: 240_000 });
  expect(down.code).toBe(0);
  expect(envelope(down).data).toMatchObject({ path: join(local, "tree"), files: FILES + 2 });
  expect(snapshot(join(local, "tree"))).toEqual(snapshot(tree, ["link-out"]));
});
