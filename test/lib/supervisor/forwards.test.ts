/**
 * The supervisor's port forwards (forwards.ts) over in-process clients of a relay to the native
 * test-mode agent, which runs on this host: a "guest port" is a port on this host's loopback.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { connect, createServer, type Server } from "node:net";
import { join } from "node:path";
import { AlreadyExistsError, NotFoundError } from "../../../lib/errors.ts";
import { PortForwards } from "../../../lib/supervisor/forwards.ts";
import { agentRelay, type AgentRelay } from "./_relay.ts";
import { scratchDir } from "../../helpers/scratch.ts";

let setup: AgentRelay;
let echo: Server;
let guestPort: number;
const vm = { id: "test-vm", name: "box" };

beforeAll(async () => {
  setup = await agentRelay();
  echo = createServer((socket) => socket.on("data", (data) => socket.write(`echo:${data}`)));
  await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", () => resolve()));
  guestPort = (echo.address() as { port: number }).port;
}, 300_000);
afterAll(async () => {
  echo.close();
  await setup.stop();
});

function roundTrip(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: "127.0.0.1" });
    socket.once("data", (data) => {
      socket.end();
      resolve(data.toString());
    });
    socket.on("error", reject);
    socket.write(text);
  });
}

test("a forward listens on 127.0.0.1 only and carries each connection to the guest port through the agent", async () => {
  const saved = join(scratchDir("fwd-"), "forwards.json");
  const forwards = new PortForwards(setup.client, saved, vm);
  const info = await forwards.expose({ guestPort });
  expect(info).toMatchObject({ guestPort, address: "127.0.0.1", connections: 0 });
  expect(await roundTrip(info.hostPort, "hi")).toBe("echo:hi");
  expect(JSON.parse(readFileSync(saved, "utf8"))).toEqual([{ hostPort: info.hostPort, guestPort }]);
  expect(forwards.list().map((f) => f.hostPort)).toEqual([info.hostPort]);
  forwards.close(info.hostPort);
  expect(forwards.list()).toEqual([]);
  expect(JSON.parse(readFileSync(saved, "utf8"))).toEqual([]);
  forwards.closeAll();
  expect(existsSync(saved)).toBe(false);
});

test("the list a crashed supervisor left is opened again by the next one, on the same host ports", async () => {
  const saved = join(scratchDir("fwd-"), "forwards.json");
  const crashed = new PortForwards(setup.client, saved, vm);
  const info = await crashed.expose({ guestPort });
  // The crash: its listeners go with its process, its list stays on disk.
  (crashed as unknown as { forwards: Map<number, { server: Server }> }).forwards.get(info.hostPort)!.server.close();
  await Bun.sleep(50);
  const next = new PortForwards(setup.client, saved, vm);
  await next.restore();
  expect(next.list()).toMatchObject([{ hostPort: info.hostPort, guestPort }]);
  expect(await roundTrip(info.hostPort, "again")).toBe("echo:again");
  next.closeAll();
});

test("a host port in use, a port forwarded twice, and closing what is not there are refused clearly", async () => {
  const saved = join(scratchDir("fwd-"), "forwards.json");
  const forwards = new PortForwards(setup.client, saved, vm);
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", () => resolve()));
  const takenPort = (taken.address() as { port: number }).port;
  await expect(forwards.expose({ guestPort, hostPort: takenPort })).rejects.toBeInstanceOf(AlreadyExistsError);
  taken.close();
  const info = await forwards.expose({ guestPort });
  const twice = await forwards.expose({ guestPort: 9, hostPort: info.hostPort }).catch((e: unknown) => e);
  expect(twice).toBeInstanceOf(AlreadyExistsError);
  expect((twice as AlreadyExistsError).hint).toContain("port close box");
  expect(() => forwards.close(1)).toThrow(NotFoundError);
  forwards.closeAll();
});

test("a connection to a guest port nothing listens on is refused like a closed port, and the forward goes on", async () => {
  const saved = join(scratchDir("fwd-"), "forwards.json");
  const forwards = new PortForwards(setup.client, saved, vm);
  const free = createServer();
  await new Promise<void>((resolve) => free.listen(0, "127.0.0.1", () => resolve()));
  const nothing = (free.address() as { port: number }).port;
  free.close();
  const info = await forwards.expose({ guestPort: nothing });
  const outcome = await new Promise<string>((resolve) => {
    const socket = connect({ port: info.hostPort, host: "127.0.0.1" });
    socket.on("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? "error"));
    socket.on("close", () => resolve("closed"));
  });
  expect(["ECONNRESET", "closed"]).toContain(outcome);
  expect(forwards.list()).toHaveLength(1);
  forwards.closeAll();
});
