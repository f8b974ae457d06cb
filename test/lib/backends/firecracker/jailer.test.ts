import { describe, expect, test } from "bun:test";
import { hostPathInJail, jailerPlan, type JailerOptions } from "../../../../lib/backends/firecracker/jailer.ts";
import { InvalidInputError } from "../../../../lib/errors.ts";

const BASE: JailerOptions = {
  jailerBinary: "/usr/local/bin/jailer",
  firecrackerBinary: "/usr/local/bin/firecracker",
  uid: 10_007,
  gid: 10_008,
  chrootBaseDir: "/var/lib/smolvm/vms/abc/jail",
};

describe("jailerPlan", () => {
  test("the minimal argv: id, exec-file, uid/gid, chroot base, cgroup v2, and Firecracker's own flags after --", () => {
    const { argv, layout } = jailerPlan("abc", BASE);
    expect(argv).toEqual([
      "--id", "abc", "--exec-file", "/usr/local/bin/firecracker", "--uid", "10007", "--gid", "10008",
      "--chroot-base-dir", "/var/lib/smolvm/vms/abc/jail", "--cgroup-version", "2", "--", "--api-sock", "/api.sock",
    ]);
    expect(layout).toEqual({
      id: "abc",
      instanceDir: "/var/lib/smolvm/vms/abc/jail/firecracker/abc",
      chrootDir: "/var/lib/smolvm/vms/abc/jail/firecracker/abc/root",
      cgroupDirs: [],
      uid: 10_007,
      gid: 10_008,
    });
  });

  test("cgroup v2 settings make one cgroup under the parent; v1 one per controller", () => {
    const cgroups = { "memory.max": "536870912", "cpu.max": "100000 100000" };
    const v2 = jailerPlan("abc", { ...BASE, cgroups, parentCgroup: "smolvm" });
    expect(v2.argv).toContain("--parent-cgroup");
    expect(v2.argv.join(" ")).toContain("--cgroup memory.max=536870912 --cgroup cpu.max=100000 100000");
    expect(v2.layout.cgroupDirs).toEqual(["/sys/fs/cgroup/smolvm/abc"]);
    const v1 = jailerPlan("abc", { ...BASE, cgroupVersion: 1, cgroups: { "cpu.shares": "512", "cpuset.mems": "0", "cpu.cfs_quota_us": "1" } });
    expect(v1.layout.cgroupDirs).toEqual(["/sys/fs/cgroup/cpu/firecracker/abc", "/sys/fs/cgroup/cpuset/firecracker/abc"]);
  });

  test("netns, a new pid namespace (with its pid file) and resource limits", () => {
    const { argv, layout } = jailerPlan("abc", { ...BASE, netns: "/var/run/netns/smolvm-abc", newPidNs: true, resourceLimits: { "no-file": 2048, fsize: 1 << 30 } });
    const own = argv.slice(0, argv.indexOf("--"));
    expect(own.join(" ")).toContain("--netns /var/run/netns/smolvm-abc --new-pid-ns --resource-limit no-file=2048 --resource-limit fsize=1073741824");
    expect(own).not.toContain("--daemonize");
    expect(layout.pidFile).toBe("/var/lib/smolvm/vms/abc/jail/firecracker/abc/root/firecracker.pid");
  });

  test("refuses ids, owners and cgroup settings the jailer would reject or that would escape", () => {
    expect(() => jailerPlan("a.b", BASE)).toThrow(InvalidInputError);
    expect(() => jailerPlan("x".repeat(65), BASE)).toThrow("not a valid jail id");
    expect(() => jailerPlan("abc", { ...BASE, uid: -1 })).toThrow("uid -1");
    expect(() => jailerPlan("abc", { ...BASE, cgroups: { "memory.max": "1\n2" } })).toThrow("is not a cgroup setting");
    expect(() => jailerPlan("abc", { ...BASE, cgroups: { "../evil": "1" } })).toThrow("is not a cgroup setting");
    expect(() => jailerPlan("abc", { ...BASE, parentCgroup: "../up" })).toThrow('without ".."');
  });
});

describe("hostPathInJail", () => {
  test("maps a jail path under the chroot dir and refuses one that climbs out", () => {
    const { layout } = jailerPlan("abc", BASE);
    expect(hostPathInJail(layout, "/vsock.sock")).toBe("/var/lib/smolvm/vms/abc/jail/firecracker/abc/root/vsock.sock");
    expect(() => hostPathInJail(layout, "/../etc/passwd")).toThrow(InvalidInputError);
    expect(() => hostPathInJail(layout, "relative")).toThrow(InvalidInputError);
  });
});
