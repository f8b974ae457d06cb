/**
 * The remote command line an SSH exec sends (pure, tested without a VM). sshd runs it through
 * root's login shell with `-c`; the wrapper gives the command what the agent gives an exec
 * (PROTOCOL.md, `exec`): the base environment, then the managed one from profile.d, then the
 * call's own; `cwd` (default /root, else /); stdin from /dev/null unless asked for; and it
 * reports the process id first, on a line of its own, so the host can signal the whole process
 * group later (sshd makes each session's shell a session and group leader, and `exec` keeps
 * its pid).
 */
import { ENV_FILE } from "./envfile.ts";

export const BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export const PID_MARKER = "smolvm:pid:";
export const NO_CWD_MARKER = "smolvm:nocwd";

/** One word for a POSIX shell, whatever it contains. */
export function shQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}

export interface RemoteCommandSpec {
  argv?: string[];
  shell?: string;
  env?: Record<string, string>;
  cwd?: string;
  stdin?: boolean;
}

export function remoteCommand(spec: RemoteCommandSpec): string {
  const cd = spec.cwd === undefined
    ? "{ cd /root 2>/dev/null || cd /; }"
    : `{ cd -- ${shQuote(spec.cwd)} 2>/dev/null || { echo ${NO_CWD_MARKER} >&2; exit 1; }; }`;
  const program = spec.argv !== undefined ? spec.argv.map(shQuote).join(" ") : `/bin/sh -c ${shQuote(spec.shell ?? "")}`;
  const own = Object.entries(spec.env ?? {}).map(([name, value]) => `${name}=${shQuote(value)}`);
  return [
    cd,
    `echo ${PID_MARKER}$$ >&2`,
    `export PATH=${BASE_PATH} HOME=/root USER=root LOGNAME=root SHELL=/bin/sh LANG=C.UTF-8`,
    `if [ -r ${ENV_FILE} ]; then . ${ENV_FILE}; fi`,
    ...(own.length > 0 ? [`export ${own.join(" ")}`] : []),
    `exec ${program}${spec.stdin ? "" : " </dev/null"}`,
  ].join("; ");
}

/** What the wrapper's first line says: the pid, a missing working directory, or neither. */
export function parseMarker(line: string): { pid: number } | { noCwd: true } | undefined {
  const text = line.replace(/\r$/, "");
  if (text === NO_CWD_MARKER) return { noCwd: true };
  if (text.startsWith(PID_MARKER)) {
    const pid = Number(text.slice(PID_MARKER.length));
    if (Number.isInteger(pid) && pid > 0) return { pid };
  }
  return undefined;
}

/** A signal for `kill -SIG`: a name (with or without SIG) or a number; undefined if neither. */
export function killSignal(signal: string | number): string | undefined {
  if (typeof signal === "number") return Number.isInteger(signal) && signal >= 0 && signal < 65 ? String(signal) : undefined;
  const name = signal.toUpperCase().replace(/^SIG/, "");
  return /^[A-Z][A-Z0-9+-]*$/.test(name) || /^\d+$/.test(name) ? name : undefined;
}
