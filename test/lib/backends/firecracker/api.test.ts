/**
 * The API client's transport, against small real servers on a Unix socket that misbehave on
 * purpose: no answer, an endless answer, a body that is not JSON, no socket at all.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer as createNetServer, type Server as NetServer, type Socket } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FirecrackerApi, FirecrackerApiError, faultOf } from "../../../../lib/backends/firecracker/api.ts";
import { InvalidInputError, NotRunningError, TimeoutError } from "../../../../lib/errors.ts";
import { rejection } from "../../../helpers/rejection.ts";

let dir: string;
let servers: Array<HttpServer | NetServer>;
let sockets: Socket[];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "smolvm-fc-api-"));
  servers = [];
  sockets = [];
});

afterEach(async () => {
  for (const socket of sockets) socket.destroy();
  for (const server of servers) await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

async function listen<T extends HttpServer | NetServer>(server: T): Promise<string> {
  const path = join(dir, `s${servers.length}.sock`);
  servers.push(server);
  server.on("connection", (socket: Socket) => sockets.push(socket));
  await new Promise<void>((resolve) => server.listen(path, () => resolve()));
  return path;
}


describe("transport", () => {
  test("a server that never answers is a timeout naming the request", async () => {
    const path = await listen(createNetServer(() => {}));
    const started = Date.now();
    const error = await rejection(new FirecrackerApi(path, { timeoutMs: 200 }).describeInstance());
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error.message).toBe("Cannot describe the Firecracker instance: Firecracker did not answer GET / within 200 ms");
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  test("an answer larger than the cap is cut off and refused", async () => {
    const path = await listen(createHttpServer((_, response) => {
      response.writeHead(200, { "Content-Type": "application/json" });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const pump = () => {
        while (response.write(chunk)) { /* until the socket pushes back */ }
      };
      response.on("drain", pump);
      pump();
    }));
    const error = await rejection(new FirecrackerApi(path, { maxResponseBytes: 100_000 }).describeInstance());
    expect(error.code).toBe("COMMAND_FAILED");
    expect(error.message).toContain("exceeds 100000 bytes");
  });

  test("a missing socket or a dead listener is NOT_RUNNING, not a crash", async () => {
    const error = await rejection(new FirecrackerApi(join(dir, "nothing.sock")).pause());
    expect(error).toBeInstanceOf(NotRunningError);
    expect(error.message).toBe(`Cannot pause the VM: Firecracker is not reachable: its API socket "${join(dir, "nothing.sock")}" does not exist`);
    const path = await listen(createNetServer((socket) => socket.destroy()));
    expect(await rejection(new FirecrackerApi(path).resume())).toBeInstanceOf(NotRunningError);
  });

  test("a 2xx answer that is not JSON is refused; an error answer that is not JSON is shown as it came", async () => {
    let status = 200;
    const path = await listen(createHttpServer((_, response) => {
      response.writeHead(status, { "Content-Type": "text/plain" });
      response.end("<html>not firecracker</html>");
    }));
    const api = new FirecrackerApi(path);
    const notJson = await rejection(api.version());
    expect(notJson.code).toBe("COMMAND_FAILED");
    expect(notJson.message).toContain("invalid JSON");
    status = 500;
    const raw = await rejection(api.version());
    expect(raw).toBeInstanceOf(FirecrackerApiError);
    expect((raw as FirecrackerApiError).faultMessage).toBe("<html>not firecracker</html>");
  });

  test("each request goes out with its JSON body and closes its connection", async () => {
    const seen: Array<{ method?: string; url?: string; type?: string; body: string; connection?: string }> = [];
    const path = await listen(createHttpServer((request, response) => {
      let body = "";
      request.on("data", (chunk) => (body += chunk));
      request.on("end", () => {
        seen.push({ method: request.method, url: request.url, type: request.headers["content-type"], body, connection: request.headers.connection });
        response.writeHead(204);
        response.end();
      });
    }));
    const api = new FirecrackerApi(path);
    await api.putVsock({ guest_cid: 7, uds_path: "/v.sock" });
    await api.pause();
    expect(seen).toEqual([
      { method: "PUT", url: "/vsock", type: "application/json", body: '{"guest_cid":7,"uds_path":"/v.sock"}', connection: "close" },
      { method: "PATCH", url: "/vm", type: "application/json", body: '{"state":"Paused"}', connection: "close" },
    ]);
  });
});

describe("request checks before sending", () => {
  test("a drive or interface id Firecracker would refuse is an input error, and nothing is sent", async () => {
    const api = new FirecrackerApi(join(dir, "unused.sock"));
    await expect(api.putDrive({ drive_id: "../root", is_root_device: true })).rejects.toBeInstanceOf(InvalidInputError);
    await expect(api.putNetworkInterface({ iface_id: "eth 0", host_dev_name: "tap0" })).rejects.toBeInstanceOf(InvalidInputError);
  });
});

describe("faultOf", () => {
  test("takes fault_message, else the body, and cuts what is too long to show", () => {
    expect(faultOf('{"fault_message":"Bad drive"}')).toBe("Bad drive");
    expect(faultOf('{"other":1}')).toBe('{"other":1}');
    expect(faultOf("")).toBe("(no message)");
    const long = faultOf(JSON.stringify({ fault_message: "x".repeat(5000) }));
    expect(long.startsWith("x".repeat(4096))).toBe(true);
    expect(long.endsWith("(cut at 4096 characters)")).toBe(true);
  });
});
