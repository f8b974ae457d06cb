/**
 * Which image a preset boots: its own when one is at hand (a local build of the current recipe,
 * or a published one), else the default image with the agent installed at boot. A preset image
 * is never built implicitly by `start` (several minutes of mmdebstrap and npm): build it with
 * `smolvm image build NAME` to make later starts fast.
 */
import { DEFAULT_IMAGE } from "../config.ts";
import type { GuestArch } from "../kernel/arch.ts";
import type { Preset } from "./catalog.ts";

export interface PresetImage {
  /** The image the sandbox boots. */
  image: string;
  /** True when the agent must be installed in the sandbox after boot. */
  installAtBoot: boolean;
  /** Why, in words (shown with progress and in `--json`). */
  reason: string;
}

/** True when a build of `name`'s current recipe is in the local cache. */
async function cachedLocally(name: string, arch: GuestArch): Promise<boolean> {
  const [{ currentRecipeHash }, { imageDir, readImage }] = await Promise.all([import("../images/build.ts"), import("../images/store.ts")]);
  const hash = await currentRecipeHash(name, { arch });
  return (await readImage(imageDir(name, arch, hash))) !== undefined;
}

export async function resolvePresetImage(preset: Preset, arch: GuestArch): Promise<PresetImage> {
  if (preset.image === undefined) {
    return { image: DEFAULT_IMAGE, installAtBoot: true, reason: `${preset.title} has no image (it is installed in the sandbox)` };
  }
  if (await cachedLocally(preset.image, arch)) return { image: preset.image, installAtBoot: false, reason: `the ${preset.image} image is built` };
  return {
    image: DEFAULT_IMAGE,
    installAtBoot: true,
    reason: `no ${preset.image} image here (build one with \`smolvm image build ${preset.image}\` for faster starts)`,
  };
}
