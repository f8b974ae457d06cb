/**
 * A small XML well-formedness check for the SVG test (no parser dependency): one root element,
 * every tag closed in order, attributes quoted and unique, text and attributes free of raw `<`
 * and of `&` outside the five predefined entities or numeric references.
 */
export function xmlProblems(xml: string): string[] {
  const problems: string[] = [];
  const body = xml.replace(/^<\?xml[^?]*\?>\s*/, "");
  const stack: string[] = [];
  let roots = 0;
  const entity = /&(?!(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/;
  const token = /<(\/?)([A-Za-z_][\w:.-]*)((?:\s+[\w:.-]+\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*(\/?)>|([^<]+)|(<)/g;
  let match: RegExpExecArray | null;
  while ((match = token.exec(body)) !== null) {
    const [, closing, name, attrs, selfClosing, text, stray] = match;
    if (stray !== undefined) {
      problems.push(`unparseable markup at ${match.index}: ${body.slice(match.index, match.index + 40)}`);
      continue;
    }
    if (text !== undefined) {
      if (entity.test(text)) problems.push(`bare & in text: ${text.slice(0, 40)}`);
      if (stack.length === 0 && text.trim() !== "") problems.push(`text outside the root: ${text.slice(0, 40)}`);
      continue;
    }
    const seen = new Set<string>();
    for (const attr of (attrs ?? "").matchAll(/([\w:.-]+)\s*=\s*("([^"]*)"|'([^']*)')/g)) {
      if (seen.has(attr[1]!)) problems.push(`duplicate attribute ${attr[1]} on <${name}>`);
      seen.add(attr[1]!);
      if (entity.test(attr[3] ?? attr[4] ?? "")) problems.push(`bare & in attribute ${attr[1]} of <${name}>`);
    }
    if (closing) {
      const open = stack.pop();
      if (open !== name) problems.push(`</${name}> closes <${open ?? "nothing"}>`);
    } else if (!selfClosing) {
      if (stack.length === 0) roots += 1;
      stack.push(name!);
    } else if (stack.length === 0) {
      roots += 1;
    }
  }
  if (stack.length > 0) problems.push(`unclosed: ${stack.join(" > ")}`);
  if (roots !== 1) problems.push(`${roots} root elements`);
  return problems;
}
