/** The shapes of the SDK's per-sandbox handles: its managed environment and its port forwards. */
import type { PortForwardInfo } from "./ports.ts";

/** The managed environment of a sandbox (`vm.env`). */
export interface SandboxEnv {
  /**
   * Sets variables every later command sees (also login shells and SSH sessions, and after
   * stop/start). Resolves to the whole managed set.
   *
   * ```ts
   * await vm.env.set({ API_KEY: "secret", MODE: "dev" });
   * ```
   */
  set(vars: Record<string, string>): Promise<Record<string, string>>;
  /**
   * Removes variables (names that are not set are ignored). Resolves to what is left.
   *
   * ```ts
   * await vm.env.unset(["MODE"]);
   * ```
   */
  unset(names: string[]): Promise<Record<string, string>>;
  /**
   * The managed variables and their values.
   *
   * ```ts
   * const { API_KEY } = await vm.env.list();
   * ```
   */
  list(): Promise<Record<string, string>>;
}

/** A host port forwarded into the sandbox by `vm.exposeLocal`. */
export interface PortForward extends PortForwardInfo {
  /**
   * `"process"` for a forward held by this process (the SSH channel's tunnels), which ends when
   * the process does; absent for the supervisor's, which outlive it.
   */
  heldBy?: "process";
  /** Stops the forward and ends its connections; does nothing if it is already gone. */
  close(): Promise<void>;
  /** `await using fwd = await vm.exposeLocal(8080)` closes the forward at scope end. */
  [Symbol.asyncDispose](): Promise<void>;
}
