/**
 * macOS code-signing entitlements, as `codesign -d --entitlements - FILE` prints them. QEMU may
 * use Hypervisor.framework only when signed with `com.apple.security.hypervisor`; Homebrew's
 * qemu is, a hand-built one usually is not, and without it QEMU cannot start a guest with HVF.
 * smolvm itself needs no entitlement: QEMU, not smolvm, opens the hypervisor.
 */
export const HYPERVISOR_ENTITLEMENT = "com.apple.security.hypervisor";

/**
 * Whether codesign's output grants the hypervisor entitlement: true or false when the output
 * says, undefined when it cannot be read. Both of codesign's formats are understood: the XML
 * property list (older macOS, or `--xml`) and the bracketed dump of macOS 12 and later
 * (`[Key] com.apple.security.hypervisor` / `[Value]` / `[Bool] true`).
 */
export function grantsHypervisor(codesignOutput: string): boolean | undefined {
  const key = HYPERVISOR_ENTITLEMENT.replaceAll(".", "\\.");
  const xml = new RegExp(`<key>\\s*${key}\\s*</key>\\s*<(true|false)\\s*/>`).exec(codesignOutput);
  if (xml !== null) return xml[1] === "true";
  const bracketed = new RegExp(`\\[Key\\]\\s*${key}\\s*\\[Value\\]\\s*\\[Bool\\]\\s*(true|false)`).exec(codesignOutput);
  if (bracketed !== null) return bracketed[1] === "true";
  if (/code object is not signed at all/.test(codesignOutput)) return false;
  // A signed file with entitlements that do not include it, or with none at all.
  if (/<plist\b|\[Dict\]/.test(codesignOutput)) return false;
  if (/^Executable=/m.test(codesignOutput) && !/error|invalid|No such file/i.test(codesignOutput)) return false;
  return undefined;
}
