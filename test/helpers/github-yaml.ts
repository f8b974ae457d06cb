/**
 * Strict checkers for GitHub Actions files, from GitHub's documented syntax ("Metadata syntax
 * for GitHub Actions" for action.yml, "Workflow syntax" for workflows): unknown keys, missing
 * required keys, wrongly typed values, steps that mix `run` and `uses` or lack `shell`, and
 * expressions naming inputs, steps or jobs that do not exist. Each returns every problem found,
 * as "path: what is wrong", so a test shows them all at once.
 */
import { parseDocument } from "yaml";

type Node = Record<string, unknown>;

export function parseYamlStrict(text: string): unknown {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true, strict: true });
  if (doc.errors.length > 0) throw new Error(doc.errors.map((e) => e.message).join("\n"));
  return doc.toJS();
}

const isMap = (value: unknown): value is Node => typeof value === "object" && value !== null && !Array.isArray(value);
const ID = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const SHELLS = new Set(["bash", "pwsh", "python", "sh", "cmd", "powershell"]);
const BRANDING_COLORS = new Set(["white", "black", "yellow", "blue", "green", "orange", "red", "purple", "gray-dark"]);

class Problems {
  readonly list: string[] = [];
  add(path: string, problem: string): void {
    this.list.push(`${path}: ${problem}`);
  }
  keys(node: Node, path: string, allowed: readonly string[], required: readonly string[] = []): void {
    for (const key of Object.keys(node)) if (!allowed.includes(key)) this.add(`${path}.${key}`, "unknown key");
    for (const key of required) if (!(key in node)) this.add(path, `missing required key "${key}"`);
  }
  string(node: Node, key: string, path: string): void {
    if (key in node && typeof node[key] !== "string") this.add(`${path}.${key}`, "must be a string");
  }
}

/** `${{ ... }}` expressions in any string under `value`, with where they were found. */
function expressions(value: unknown, path: string, found: [string, string][] = []): [string, string][] {
  if (typeof value === "string") for (const match of value.matchAll(/\$\{\{(.*?)\}\}/gs)) found.push([path, match[1]!.trim()]);
  else if (Array.isArray(value)) value.forEach((item, i) => expressions(item, `${path}[${i}]`, found));
  else if (isMap(value)) for (const [key, item] of Object.entries(value)) expressions(item, `${path}.${key}`, found);
  return found;
}

function checkSteps(steps: unknown, path: string, problems: Problems, options: { composite: boolean }): string[] {
  const ids: string[] = [];
  if (!Array.isArray(steps) || steps.length === 0) {
    problems.add(path, "must be a non-empty list of steps");
    return ids;
  }
  const allowed = ["name", "id", "if", "run", "shell", "uses", "with", "env", "working-directory", "continue-on-error", ...(options.composite ? [] : ["timeout-minutes"])];
  steps.forEach((step, i) => {
    const at = `${path}[${i}]`;
    if (!isMap(step)) return problems.add(at, "must be a mapping");
    problems.keys(step, at, allowed);
    const hasRun = "run" in step;
    const hasUses = "uses" in step;
    if (hasRun === hasUses) problems.add(at, "must have exactly one of `run` and `uses`");
    if (hasRun) {
      problems.string(step, "run", at);
      if ("with" in step) problems.add(`${at}.with`, "only a `uses` step takes `with`");
      if (options.composite && !("shell" in step)) problems.add(at, "a `run` step in a composite action needs `shell`");
      // Interpolating an expression into a script is script injection waiting to happen: pass it through env.
      if (typeof step.run === "string" && /\$\{\{/.test(step.run)) problems.add(`${at}.run`, "has a ${{ }} expression; pass values through `env` instead");
    }
    if ("shell" in step) {
      if (typeof step.shell !== "string" || !(SHELLS.has(step.shell) || step.shell.includes("{0}"))) problems.add(`${at}.shell`, `unknown shell ${JSON.stringify(step.shell)}`);
      if (!hasRun) problems.add(`${at}.shell`, "only a `run` step takes `shell`");
    }
    if (hasUses && (typeof step.uses !== "string" || !/^(\.\/.+|docker:\/\/.+|[\w.-]+\/[\w./-]+@[\w.-]+)$/.test(step.uses))) {
      problems.add(`${at}.uses`, "must be owner/repo[/path]@ref, ./path or docker://image");
    }
    if ("working-directory" in step && !hasRun) problems.add(`${at}.working-directory`, "only a `run` step takes `working-directory`");
    for (const key of ["with", "env"]) if (key in step && !isMap(step[key])) problems.add(`${at}.${key}`, "must be a mapping");
    // A step may read only the outputs of steps before it.
    for (const [where, expression] of expressions(step, at)) {
      for (const match of expression.matchAll(/\bsteps\.([\w-]+)\./g)) {
        if (!ids.includes(match[1]!)) problems.add(where, `refers to step "${match[1]}", which no earlier step defines`);
      }
    }
    if ("id" in step) {
      if (typeof step.id !== "string" || !ID.test(step.id)) problems.add(`${at}.id`, "must start with a letter or _ and hold only letters, digits, - and _");
      else if (ids.includes(step.id)) problems.add(`${at}.id`, `duplicate step id "${step.id}"`);
      else ids.push(step.id);
    }
  });
  return ids;
}

/** action.yml, composite actions only (the kind this project ships). */
export function actionProblems(action: unknown): string[] {
  const problems = new Problems();
  if (!isMap(action)) return ["action: must be a mapping"];
  problems.keys(action, "action", ["name", "author", "description", "inputs", "outputs", "runs", "branding"], ["name", "description", "runs"]);
  for (const key of ["name", "author", "description"]) problems.string(action, key, "action");
  const inputs = action.inputs ?? {};
  if (!isMap(inputs)) problems.add("action.inputs", "must be a mapping");
  else {
    for (const [id, input] of Object.entries(inputs)) {
      const at = `action.inputs.${id}`;
      if (!ID.test(id)) problems.add(at, "an input id must start with a letter or _ and hold only letters, digits, - and _");
      if (!isMap(input)) {
        problems.add(at, "must be a mapping");
        continue;
      }
      problems.keys(input, at, ["description", "required", "default", "deprecationMessage"], ["description"]);
      problems.string(input, "description", at);
      if ("required" in input && typeof input.required !== "boolean") problems.add(`${at}.required`, "must be a boolean");
      if ("default" in input && typeof input.default !== "string") problems.add(`${at}.default`, "must be a string (quote it)");
    }
  }
  const runs = action.runs;
  let stepIds: string[] = [];
  if (!isMap(runs)) problems.add("action.runs", "must be a mapping");
  else {
    problems.keys(runs, "action.runs", ["using", "steps"], ["using", "steps"]);
    if (runs.using !== "composite") problems.add("action.runs.using", `must be "composite" (got ${JSON.stringify(runs.using)})`);
    stepIds = checkSteps(runs.steps, "action.runs.steps", problems, { composite: true });
  }
  if ("outputs" in action) {
    if (!isMap(action.outputs)) problems.add("action.outputs", "must be a mapping");
    else {
      for (const [id, output] of Object.entries(action.outputs)) {
        const at = `action.outputs.${id}`;
        if (!isMap(output)) {
          problems.add(at, "must be a mapping");
          continue;
        }
        problems.keys(output, at, ["description", "value"], ["description", "value"]);
        for (const match of String(output.value ?? "").matchAll(/\bsteps\.([\w-]+)\./g)) {
          if (!stepIds.includes(match[1]!)) problems.add(`${at}.value`, `refers to step "${match[1]}", which does not exist`);
        }
      }
    }
  }
  if ("branding" in action) {
    const branding = action.branding;
    if (!isMap(branding)) problems.add("action.branding", "must be a mapping");
    else {
      problems.keys(branding, "action.branding", ["icon", "color"]);
      if ("color" in branding && !BRANDING_COLORS.has(String(branding.color))) problems.add("action.branding.color", `unknown color ${JSON.stringify(branding.color)}`);
    }
  }
  const declared = isMap(inputs) ? Object.keys(inputs) : [];
  for (const [where, expression] of expressions(action, "action")) {
    for (const match of expression.matchAll(/\binputs\.([\w-]+)/g)) {
      if (!declared.includes(match[1]!)) problems.add(where, `refers to input "${match[1]}", which is not declared`);
    }
  }
  return problems.list;
}

/** A workflow file (or the workflow part of a README example). */
export function workflowProblems(workflow: unknown): string[] {
  const problems = new Problems();
  if (!isMap(workflow)) return ["workflow: must be a mapping"];
  problems.keys(workflow, "workflow", ["name", "run-name", "on", "permissions", "env", "defaults", "concurrency", "jobs"], ["on", "jobs"]);
  const jobs = workflow.jobs;
  if (!isMap(jobs) || Object.keys(jobs).length === 0) {
    problems.add("workflow.jobs", "must map job ids to jobs");
    return problems.list;
  }
  for (const [id, job] of Object.entries(jobs)) {
    const at = `workflow.jobs.${id}`;
    if (!ID.test(id)) problems.add(at, "a job id must start with a letter or _ and hold only letters, digits, - and _");
    if (!isMap(job)) {
      problems.add(at, "must be a mapping");
      continue;
    }
    problems.keys(job, at, ["name", "needs", "runs-on", "permissions", "environment", "concurrency", "outputs", "env", "defaults", "if", "steps", "timeout-minutes", "strategy", "continue-on-error", "container", "services"], ["runs-on", "steps"]);
    const needs = job.needs === undefined ? [] : Array.isArray(job.needs) ? job.needs : [job.needs];
    for (const need of needs) if (typeof need !== "string" || !(need in jobs) || need === id) problems.add(`${at}.needs`, `names no other job: ${JSON.stringify(need)}`);
    checkSteps(job.steps, `${at}.steps`, problems, { composite: false });
    const matrix = isMap(job.strategy) && isMap(job.strategy.matrix) ? job.strategy.matrix : undefined;
    const matrixKeys = new Set<string>();
    if (matrix !== undefined) {
      for (const [key, value] of Object.entries(matrix)) {
        if (key === "include" && Array.isArray(value)) value.forEach((row) => isMap(row) && Object.keys(row).forEach((k) => matrixKeys.add(k)));
        else if (key !== "exclude") matrixKeys.add(key);
      }
    }
    for (const [where, expression] of expressions(job, at)) {
      for (const match of expression.matchAll(/\bmatrix\.([\w-]+)/g)) if (!matrixKeys.has(match[1]!)) problems.add(where, `refers to matrix.${match[1]}, which the job's matrix does not define`);
      for (const match of expression.matchAll(/\bneeds\.([\w-]+)\./g)) if (!needs.includes(match[1])) problems.add(where, `refers to needs.${match[1]}, which the job does not need`);
    }
  }
  return problems.list;
}
