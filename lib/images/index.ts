/**
 * Root filesystem images: recipes, cached builds, the boot-floor image.
 */
export {
  buildImage,
  currentRecipeHash,
  ensureImage,
  type BuildImageOptions,
  type ImageBuildPhase,
  type ImageProgress,
} from "./build.ts";
export { ensureFloorImage, FLOOR_INIT_PATH, FLOOR_READY_PREFIX } from "./floor.ts";
export { getRecipe, knownImages, parseRecipe, recipeHash, type Recipe } from "./recipes.ts";
export { listImages, removeImage, type ImageInfo, type ImageManifest } from "./store.ts";
export { AGENT_GUEST_PATH } from "../kernel/cmdline.ts";
