/**
 * How commands talk to people and to scripts.
 *
 * With `--json`, stdout carries exactly one JSON document, `{ok, command, data, error}`, and
 * nothing else; progress and chatter go to stderr, and only when stderr is a terminal. Without
 * it, results are plain text; colour is used only on a terminal and never with NO_COLOR set.
 */
import type { SmolError } from "../lib/errors.ts";
import { isTerminal, printErr, printOut } from "./stdio.ts";

export interface JsonEnvelope {
  ok: boolean;
  command: string;
  data: unknown;
  error: ReturnType<SmolError["toJSON"]> | null;
}

export function wantsColor(fd: 1 | 2 = 1): boolean {
  return !("NO_COLOR" in process.env && process.env.NO_COLOR !== "") && isTerminal(fd);
}

const codes = { red: 31, green: 32, yellow: 33, dim: 2, bold: 1 } as const;
export type Style = keyof typeof codes;

export function paint(text: string, style: Style, fd: 1 | 2 = 1): string {
  return wantsColor(fd) ? `\u001b[${codes[style]}m${text}\u001b[0m` : text;
}

export class Output {
  constructor(
    readonly command: string,
    readonly json: boolean,
  ) {}

  /** Prints a command's result: the JSON envelope, or whatever `human` renders. */
  result(data: unknown, human: () => string | undefined): void {
    if (this.json) {
      writeJson({ ok: true, command: this.command, data, error: null });
      return;
    }
    const text = human();
    if (text !== undefined && text !== "") printOut(text);
  }

  /** A line for a person watching: stderr, terminal only, never in JSON mode. */
  note(line: string): void {
    if (!this.json && isTerminal(2)) printErr(line);
  }

  /** A warning a person must see even in a pipe (still never on stdout). */
  warn(line: string): void {
    if (!this.json) printErr(`${paint("warning:", "yellow", 2)} ${line}`);
  }
}

export function writeJson(envelope: JsonEnvelope): void {
  printOut(JSON.stringify(envelope, null, 2));
}

export function printError(command: string, error: SmolError, json: boolean): void {
  if (json) {
    writeJson({ ok: false, command, data: null, error: error.toJSON() });
    return;
  }
  const lines = [`${paint("error:", "red", 2)} ${error.message}`];
  if (error.hint !== undefined) lines.push(`  ${paint("hint:", "dim", 2)} ${error.hint}`);
  printErr(lines.join("\n"));
}

/** Renders rows as aligned columns; the header row is bold on a terminal. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join("  ").trimEnd();
  return [paint(line(header), "bold"), ...rows.map(line)].join("\n");
}

/**
 * A progress line on stderr that redraws itself on a terminal and is silent elsewhere, so pipes
 * and `--json` stay clean. Callers pass a phase and an optional fraction.
 */
export class Progress {
  private readonly live: boolean;
  private last = "";
  private lastDraw = 0;

  constructor(json: boolean) {
    this.live = !json && isTerminal(2);
  }

  update(phase: string, fraction?: number): void {
    if (!this.live) return;
    const now = Date.now();
    const text =
      fraction === undefined ? phase : `${phase} ${bar(fraction)} ${Math.round(Math.min(1, fraction) * 100)}%`;
    if (text === this.last || (now - this.lastDraw < 80 && fraction !== 1)) return;
    this.last = text;
    this.lastDraw = now;
    const width = process.stderr.columns ?? 80;
    process.stderr.write(`\r\u001b[2K${text.slice(0, width - 1)}`);
  }

  done(finalLine?: string): void {
    if (!this.live) return;
    process.stderr.write("\r\u001b[2K");
    if (finalLine !== undefined) process.stderr.write(`${finalLine}\n`);
    this.last = "";
  }
}

function bar(fraction: number): string {
  const width = 24;
  const filled = Math.round(Math.max(0, Math.min(1, fraction)) * width);
  return `[${"#".repeat(filled)}${" ".repeat(width - filled)}]`;
}
