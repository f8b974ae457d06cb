/**
 * Build inputs (the kernel build script, config fragments, the floor init's C source) are imported
 * as text with `with { type: "text" }`, which Bun and Deno both support and `bun build --compile`
 * embeds, so a single binary can build kernels and images without a checkout.
 */
declare module "*.sh" {
  const text: string;
  export default text;
}
declare module "*.config" {
  const text: string;
  export default text;
}
declare module "*.c" {
  const text: string;
  export default text;
}
