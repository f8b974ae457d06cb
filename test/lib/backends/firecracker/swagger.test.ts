/**
 * The request validator the conformance test relies on, proven on its own: its schemas come from
 * the YAML, it accepts what the spec allows and it fails on every kind of input the spec rejects.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { firecrackerSpec, SPEC_PATH } from "../../../helpers/firecracker-fake.ts";
import { type Schema, SwaggerSpec } from "../../../helpers/swagger.ts";

const spec = firecrackerSpec();
const def = (name: string): Schema => ({ $ref: `#/definitions/${name}` });
const problems = (name: string, value: unknown) => spec.validate(def(name), value, "body").map((i) => `${i.at}: ${i.problem}`);

describe("the spec as loaded", () => {
  test("is Firecracker's 1.17.0-dev document, with every definition and path of the YAML", () => {
    const raw = parseYaml(readFileSync(SPEC_PATH, "utf8")) as { definitions: object; paths: object };
    expect(spec.version).toBe("1.17.0-dev");
    expect(Object.keys(spec.definitions).sort()).toEqual(Object.keys(raw.definitions).sort());
    expect(Object.keys(spec.paths).sort()).toEqual(Object.keys(raw.paths).sort());
    // Read from the YAML, not restated: the fields Firecracker requires of a machine config.
    expect(spec.definitions.MachineConfiguration!.required).toEqual(["mem_size_mib", "vcpu_count"]);
  });

  test("a schema keyword the validator does not understand stops the load", () => {
    const document = {
      swagger: "2.0",
      info: { version: "x" },
      paths: {},
      definitions: { Thing: { type: "object", properties: { a: { oneOf: [{ type: "string" }] } } } },
    };
    expect(() => SwaggerSpec.fromDocument(document)).toThrow('"oneOf" is not understood');
    expect(() => SwaggerSpec.fromDocument({ ...document, definitions: { Thing: { $ref: "#/definitions/Nowhere" } } }))
      .toThrow("unresolvable $ref");
  });
});

describe("validation", () => {
  test("accepts bodies the spec allows", () => {
    expect(problems("MachineConfiguration", { vcpu_count: 2, mem_size_mib: 512, smt: false, track_dirty_pages: true })).toEqual([]);
    expect(problems("Drive", {
      drive_id: "rootfs", is_root_device: true, path_on_host: "/d.ext4", cache_type: "Unsafe",
      rate_limiter: { bandwidth: { size: 1000, refill_time: 100 } },
    })).toEqual([]);
    expect(problems("Metrics", { metrics_path: "/m", properties: { team: "a" } })).toEqual([]);
    expect(problems("MmdsContentsObject", { anything: { goes: [1, 2] } })).toEqual([]);
  });

  test("fails on a wrong type, a missing field, a value outside an enum or a range", () => {
    expect(problems("MachineConfiguration", { vcpu_count: "2", mem_size_mib: 512 })).toEqual(["body.vcpu_count: expected integer, got string \"2\""]);
    expect(problems("MachineConfiguration", { vcpu_count: 1.5, mem_size_mib: 512 })).toEqual(["body.vcpu_count: expected integer, got number 1.5"]);
    expect(problems("MachineConfiguration", { mem_size_mib: 512 })).toEqual(["body.vcpu_count: is required"]);
    expect(problems("MachineConfiguration", { vcpu_count: 0, mem_size_mib: 512 })).toEqual(["body.vcpu_count: 0 is below the minimum 1"]);
    expect(problems("MachineConfiguration", { vcpu_count: 33, mem_size_mib: 512 })).toEqual(["body.vcpu_count: 33 is above the maximum 32"]);
    expect(problems("InstanceActionInfo", { action_type: "Reboot" })).toEqual([
      'body.action_type: "Reboot" is not one of "FlushMetrics", "InstanceStart", "SendCtrlAltDel"',
    ]);
    expect(problems("Vsock", { guest_cid: 2, uds_path: "/v.sock" })).toEqual(["body.guest_cid: 2 is below the minimum 3"]);
    expect(problems("Vm", [])).toEqual(["body: expected object, got array"]);
    expect(problems("Vm", null)).toEqual(["body: expected object, got null"]);
  });

  test("follows $ref and items into nested definitions", () => {
    expect(problems("Drive", {
      drive_id: "d", is_root_device: false, rate_limiter: { ops: { size: -1, refill_time: 10 } },
    })).toEqual(["body.rate_limiter.ops.size: -1 is below the minimum 0"]);
    expect(problems("FullVmConfiguration", { drives: [{ drive_id: "a", is_root_device: true }, { is_root_device: true }] }))
      .toEqual(["body.drives[1].drive_id: is required"]);
    expect(problems("CpuidLeafModifier", { leaf: "0x1", subleaf: "0x0", flags: 2 ** 31, modifiers: [] }))
      .toEqual([`body.flags: ${2 ** 31} does not fit int32`]);
  });

  test("checks extra properties against additionalProperties, and rejects unknown ones where the spec is silent", () => {
    expect(problems("Metrics", { metrics_path: "/m", properties: { team: 7 } })).toEqual(["body.properties.team: expected string, got number"]);
    expect(problems("MachineConfiguration", { vcpu_count: 1, mem_size_mib: 128, mem_size_mb: 128 }))
      .toEqual(["body.mem_size_mb: is not a property the spec defines"]);
    expect(spec.validate(def("MachineConfiguration"), { vcpu_count: 1, mem_size_mib: 128, extra: 1 }, "body", { unknownProperties: "allow" }))
      .toEqual([]);
  });
});

describe("operations", () => {
  test("requests are matched to the spec's path templates, with path parameters", () => {
    const op = spec.operation("PUT", "/drives/rootfs")!;
    expect(op.template).toBe("/drives/{drive_id}");
    expect(op.pathParams).toEqual({ drive_id: "rootfs" });
    expect(spec.successStatus(op)).toBe(204);
    expect(spec.successStatus(spec.operation("GET", "/")!)).toBe(200);
    expect(spec.operation("DELETE", "/drives/rootfs")).toBeUndefined();
    expect(spec.operation("PUT", "/no-such-thing")).toBeUndefined();
  });

  test("a required body that is missing, or a body where none is taken, is an issue", () => {
    const put = spec.operation("PUT", "/vsock")!;
    expect(spec.validateRequest(put, undefined)).toEqual([{ at: "body", problem: "is required" }]);
    const get = spec.operation("GET", "/")!;
    expect(spec.validateRequest(get, {})).toEqual([{ at: "body", problem: "this operation takes no body" }]);
    // The spec leaves the body of PUT /machine-config optional.
    expect(spec.validateRequest(spec.operation("PUT", "/machine-config")!, undefined)).toEqual([]);
  });
});
