/**
 * `smolvm bench --backend firecracker` where Firecracker cannot run: refused with the reason
 * before anything is built or created.
 */
import { expect, test } from "bun:test";
import { runBench } from "../../bench/run.ts";
import { BackendUnavailableError } from "../../lib/errors.ts";
import { runCli } from "../helpers/cli.ts";
import { rejection } from "../helpers/rejection.ts";

test("the benchmark on Firecracker without a firecracker binary is refused at once, naming the backend and the fix", async () => {
  const saved = process.env.PATH;
  process.env.PATH = "/usr/bin:/bin";
  try {
    const error = await rejection(runBench({ backend: "firecracker" }), BackendUnavailableError);
    expect(error.message).toContain("Cannot use the firecracker backend");
    expect(error.message).toContain('"firecracker" is not on PATH');
    expect(error.hint).toContain("smolvm setup --firecracker");
  } finally {
    process.env.PATH = saved;
  }
  const cli = await runCli(["bench", "--backend", "firecracker", "--json"], { env: { PATH: "/usr/bin:/bin" } });
  expect(cli.code).not.toBe(0);
  expect(JSON.parse(cli.stdout).error.code).toBe("BACKEND_UNAVAILABLE");
  expect((await runCli(["bench", "--backend", "xen"])).stderr).toContain("Allowed choices are qemu, firecracker");
});
