import { expect, test } from "bun:test";
import { persistedChannel, requestedChannel } from "../../../lib/channels/resolve.ts";

test("the explicit option beats the persisted choice, which beats auto", () => {
  expect(requestedChannel({ channel: "ssh" }, "vsock")).toEqual({ requested: "vsock", source: "explicit" });
  expect(requestedChannel({ channel: "ssh" }, "auto")).toEqual({ requested: "auto", source: "explicit" });
  expect(requestedChannel({ channel: "ssh" })).toEqual({ requested: "ssh", source: "persisted" });
  expect(requestedChannel({ channel: "agent" })).toEqual({ requested: "vsock", source: "persisted" });
  expect(requestedChannel({ channel: null })).toEqual({ requested: "auto", source: "auto" });
});

test("create persists an explicit ssh or vsock, and nothing for auto", () => {
  expect(persistedChannel("ssh")).toBe("ssh");
  expect(persistedChannel("vsock")).toBe("agent");
  expect(persistedChannel("auto")).toBeNull();
  expect(persistedChannel(undefined)).toBeNull();
});
