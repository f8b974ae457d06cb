/**
 * Looking inside an ext4 image without mounting it, through debugfs (e2fsprogs).
 */
import { runHost } from "../../../lib/host/process.ts";

export interface GuestStat {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  linkTarget?: string;
}

/** `stat` of a path in the image, or undefined when it does not exist. */
export async function guestStat(image: string, path: string): Promise<GuestStat | undefined> {
  const { stdout, stderr } = await runHost("debugfs", ["-R", `stat "${path}"`, image]);
  if (/not found by ext2_lookup/.test(stderr) || !/Inode:/.test(stdout)) return undefined;
  const field = (re: RegExp) => re.exec(stdout)?.[1];
  const link = field(/Fast link dest: "(.*)"/);
  return {
    type: field(/Type: (\S+)/)!,
    mode: Number.parseInt(field(/Mode:\s+([0-7]+)/)!, 8),
    uid: Number(field(/User:\s+(\d+)/)),
    gid: Number(field(/Group:\s+(\d+)/)),
    size: Number(field(/Size: (\d+)/)),
    ...(link === undefined ? {} : { linkTarget: link }),
  };
}

/** Names in a directory of the image. */
export async function guestList(image: string, dir: string): Promise<string[]> {
  const { stdout } = await runHost("debugfs", ["-R", `ls -p "${dir}"`, image]);
  return stdout.split("\n").map((line) => line.split("/")[5]).filter((n): n is string => !!n && n !== "." && n !== "..");
}

/** Contents of a regular file in the image. */
export async function guestRead(image: string, path: string): Promise<string> {
  const { stdout } = await runHost("debugfs", ["-R", `cat "${path}"`, image]);
  return stdout;
}
