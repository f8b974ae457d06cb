/**
 * A validator for the subset of Swagger 2.0 (JSON Schema draft 4) that Firecracker's API
 * specification uses, working on the schemas parsed from the YAML at run time: nothing is
 * hand-copied, so a request smolvm sends is checked against the contract as Firecracker wrote it.
 *
 * Understood: type, required, properties, additionalProperties, enum, minimum, maximum, items,
 * $ref (to #/definitions/...), format int32/int64 (ranges); annotations (description, default,
 * example, readOnly, string formats) are ignored. Any other keyword makes `load` throw, so a
 * newer spec that needs more cannot be checked half-way without anyone noticing.
 *
 * Unknown object properties: where the spec is silent (no additionalProperties), the strict mode
 * rejects them, as Firecracker itself does (its request parsers refuse unknown fields), so a
 * misspelt field fails here instead of on a host with KVM.
 */
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";

export type Schema = Record<string, unknown>;

export interface Issue {
  /** Where in the value: `body.drives[0].path_on_host`. */
  at: string;
  problem: string;
}

export interface ValidateOptions {
  /** Where the spec says nothing about additional properties: reject them (default) or allow. */
  unknownProperties?: "reject" | "allow";
}

export interface Operation {
  /** The spec's path template, e.g. `/drives/{drive_id}`. */
  template: string;
  method: string;
  spec: Schema;
  pathParams: Record<string, string>;
}

const SCHEMA_KEYWORDS = new Set([
  "type", "required", "properties", "additionalProperties", "enum", "minimum", "maximum", "items", "$ref", "format",
  "description", "default", "example", "readOnly",
]);
const TYPES = new Set(["object", "array", "string", "integer", "number", "boolean"]);
const INT_RANGES: Record<string, [number, number]> = {
  int32: [-(2 ** 31), 2 ** 31 - 1],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

export class SwaggerSpec {
  readonly version: string;
  readonly definitions: Record<string, Schema>;
  readonly paths: Record<string, Record<string, Schema>>;

  private constructor(document: Schema) {
    if (document.swagger !== "2.0") throw new Error(`not a Swagger 2.0 document (swagger: ${String(document.swagger)})`);
    this.version = String((document.info as Schema | undefined)?.version ?? "");
    this.definitions = (document.definitions ?? {}) as Record<string, Schema>;
    this.paths = (document.paths ?? {}) as Record<string, Record<string, Schema>>;
    for (const [name, schema] of Object.entries(this.definitions)) this.#checkKeywords(schema, `#/definitions/${name}`);
    for (const [template, methods] of Object.entries(this.paths)) {
      for (const [method, operation] of Object.entries(methods)) {
        for (const parameter of (operation.parameters ?? []) as Schema[]) {
          if (parameter.schema) this.#checkKeywords(parameter.schema as Schema, `${method} ${template} body`);
        }
        for (const [status, response] of Object.entries((operation.responses ?? {}) as Record<string, Schema>)) {
          if (response.schema) this.#checkKeywords(response.schema as Schema, `${method} ${template} ${status}`);
        }
      }
    }
  }

  static load(file: string): SwaggerSpec {
    return new SwaggerSpec(parseYaml(readFileSync(file, "utf8")) as Schema);
  }

  static fromDocument(document: Schema): SwaggerSpec {
    return new SwaggerSpec(document);
  }

  /** The operation a request names, with its path parameters, or undefined if the spec has none. */
  operation(method: string, path: string): Operation | undefined {
    const lower = method.toLowerCase();
    for (const [template, methods] of Object.entries(this.paths)) {
      const names: string[] = [];
      const pattern = template.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{([^}]+)\}/g, (_, name: string) => {
        names.push(name);
        return "([^/]+)";
      });
      const match = new RegExp(`^${pattern}$`).exec(path);
      if (!match || !methods[lower]) continue;
      const pathParams = Object.fromEntries(names.map((name, i) => [name, decodeURIComponent(match[i + 1]!)]));
      return { template, method: lower, spec: methods[lower]!, pathParams };
    }
    return undefined;
  }

  /**
   * Checks a request against its operation: path parameters, and the body parameter's schema.
   * `body` is `undefined` when the request had none.
   */
  validateRequest(operation: Operation, body: unknown, options: ValidateOptions = {}): Issue[] {
    const issues: Issue[] = [];
    const parameters = (operation.spec.parameters ?? []) as Schema[];
    for (const parameter of parameters) {
      if (parameter.in === "path") {
        const value = operation.pathParams[String(parameter.name)];
        if (value === undefined || value === "") issues.push({ at: `path.${parameter.name}`, problem: "is required" });
        else issues.push(...this.validate({ type: parameter.type }, value, `path.${parameter.name}`, options));
      } else if (parameter.in === "body") {
        if (body === undefined) {
          if (parameter.required) issues.push({ at: "body", problem: "is required" });
        } else {
          issues.push(...this.validate(parameter.schema as Schema, body, "body", options));
        }
      } else {
        issues.push({ at: String(parameter.name), problem: `parameter location "${String(parameter.in)}" is not supported` });
      }
    }
    if (body !== undefined && !parameters.some((p) => p.in === "body")) {
      issues.push({ at: "body", problem: "this operation takes no body" });
    }
    return issues;
  }

  /** The response the spec defines for `status` (falling back to `default`), or undefined. */
  response(operation: Operation, status: number): Schema | undefined {
    const responses = (operation.spec.responses ?? {}) as Record<string, Schema>;
    return responses[String(status)] ?? responses.default;
  }

  /** The success status the spec defines for an operation (200 or 204). */
  successStatus(operation: Operation): number {
    const codes = Object.keys((operation.spec.responses ?? {}) as Schema).map(Number).filter((n) => n >= 200 && n < 300);
    if (codes.length !== 1) throw new Error(`${operation.method} ${operation.template}: expected one 2xx response, found ${codes.join(", ")}`);
    return codes[0]!;
  }

  /** Whether the spec lists `status` itself (not only through `default`) for the operation. */
  definesStatus(operation: Operation, status: number): boolean {
    return String(status) in ((operation.spec.responses ?? {}) as Schema);
  }

  /** Checks `value` against `schema`; returns every issue found (empty when valid). */
  validate(schema: Schema, value: unknown, at = "value", options: ValidateOptions = {}): Issue[] {
    const issues: Issue[] = [];
    this.#walk(schema, value, at, options, issues);
    return issues;
  }

  #resolve(schema: Schema): Schema {
    let current = schema;
    for (let depth = 0; typeof current.$ref === "string"; depth++) {
      if (depth > 32) throw new Error(`$ref loop at ${String(current.$ref)}`);
      const ref = current.$ref as string;
      const name = /^#\/definitions\/(.+)$/.exec(ref)?.[1];
      const target = name === undefined ? undefined : this.definitions[name];
      if (!target) throw new Error(`unresolvable $ref "${ref}"`);
      current = target;
    }
    return current;
  }

  #walk(raw: Schema, value: unknown, at: string, options: ValidateOptions, issues: Issue[]): void {
    const schema = this.#resolve(raw);
    const type = schema.type as string | undefined;
    if (type !== undefined && !hasType(value, type)) {
      issues.push({ at, problem: `expected ${type}, got ${describe(value)}` });
      return;
    }
    if (Array.isArray(schema.enum) && !schema.enum.some((allowed) => allowed === value)) {
      issues.push({ at, problem: `${JSON.stringify(value)} is not one of ${schema.enum.map((v) => JSON.stringify(v)).join(", ")}` });
    }
    if (typeof value === "number") {
      if (typeof schema.minimum === "number" && value < schema.minimum) issues.push({ at, problem: `${value} is below the minimum ${schema.minimum}` });
      if (typeof schema.maximum === "number" && value > schema.maximum) issues.push({ at, problem: `${value} is above the maximum ${schema.maximum}` });
      const range = typeof schema.format === "string" ? INT_RANGES[schema.format] : undefined;
      if (range && (value < range[0] || value > range[1])) issues.push({ at, problem: `${value} does not fit ${String(schema.format)}` });
    }
    if (Array.isArray(value) && schema.items) {
      value.forEach((item, i) => this.#walk(schema.items as Schema, item, `${at}[${i}]`, options, issues));
    }
    if (isObject(value) && (type === "object" || schema.properties !== undefined)) {
      const properties = (schema.properties ?? {}) as Record<string, Schema>;
      for (const name of (schema.required ?? []) as string[]) {
        if (!(name in value)) issues.push({ at: `${at}.${name}`, problem: "is required" });
      }
      for (const [name, item] of Object.entries(value)) {
        if (properties[name]) {
          this.#walk(properties[name]!, item, `${at}.${name}`, options, issues);
          continue;
        }
        const extra = schema.additionalProperties;
        if (extra === true) continue;
        if (isObject(extra)) {
          this.#walk(extra, item, `${at}.${name}`, options, issues);
          continue;
        }
        if (extra === false || (options.unknownProperties ?? "reject") === "reject") {
          issues.push({ at: `${at}.${name}`, problem: "is not a property the spec defines" });
        }
      }
    }
  }

  #checkKeywords(schema: Schema, where: string): void {
    for (const [keyword, value] of Object.entries(schema)) {
      if (!SCHEMA_KEYWORDS.has(keyword)) throw new Error(`${where}: schema keyword "${keyword}" is not understood by this validator`);
      if (keyword === "type" && !TYPES.has(value as string)) throw new Error(`${where}: type "${String(value)}" is not understood`);
      if (keyword === "properties") {
        for (const [name, sub] of Object.entries(value as Record<string, Schema>)) this.#checkKeywords(sub, `${where}.${name}`);
      }
      if ((keyword === "items" || keyword === "additionalProperties") && isObject(value)) this.#checkKeywords(value, `${where}.${keyword}`);
      if (keyword === "$ref") this.#resolve(schema);
    }
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function hasType(value: unknown, type: string): boolean {
  switch (type) {
    case "object": return isObject(value);
    case "array": return Array.isArray(value);
    case "string": return typeof value === "string";
    case "integer": return typeof value === "number" && Number.isInteger(value);
    case "number": return typeof value === "number" && Number.isFinite(value);
    case "boolean": return typeof value === "boolean";
    default: return false;
  }
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number" && !Number.isInteger(value)) return `number ${value}`;
  return typeof value === "string" ? `string ${JSON.stringify(value.slice(0, 40))}` : typeof value;
}
