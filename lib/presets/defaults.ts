/** The coding agents' defaults, cheap to import (the SDK's index re-exports them). */

/** Where the working directory lands in the sandbox. */
export const WORKSPACE = "/workspace";
export const DEFAULT_AGENT_MEMORY_MIB = 2048;
export const DEFAULT_AGENT_DISK_MIB = 8192;
/** Above this a workspace needs `confirmLargeWorkspace` (`--yes`). */
export const LARGE_WORKSPACE_BYTES = 256 * 1024 * 1024;
/** How long installing an agent at boot may take. */
export const DEFAULT_INSTALL_TIMEOUT_MS = 600_000;
