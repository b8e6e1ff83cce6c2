/**
 * The `filename` parameter of a multipart part's Content-Disposition header,
 * or undefined when there is none.
 *
 * A quoted value ends at the first unescaped quote; `\"` and `\\` stand for
 * `"` and `\` (Go's multipart writer and `curl --form-escape` write names so).
 * A backslash before anything else is kept, so a Windows path still ends in
 * its base name. As in formidable, `%22` (how browsers write a quote) is a quote
 * and `&#NNNN;` a character. formidable's own parser took `a\"b.png` for a
 * Windows path and kept `"b.png`.
 * @param header the raw header value, e.g. `form-data; name="file"; filename="a\"b.png"`
 * @example dispositionFilename('form-data; name="file"; filename="a\\"b.png"') // 'a"b.png'
 */
export function dispositionFilename(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  // `filename=` as a parameter (after a `;`), not `filename*=` nor inside another parameter's value.
  const re = /;\s*filename\s*=\s*/gi;
  for (let match = re.exec(header); match; match = re.exec(header)) {
    if (insideQuotes(header, match.index)) continue;
    const value = readValue(header, re.lastIndex);
    return value.replace(/%22/g, '"').replace(/&#(\d{4});/g, (_, code: string) => String.fromCharCode(Number(code)));
  }
  return undefined;
}

/** A quoted-string (with escapes) or a token, starting at `start`. */
function readValue(header: string, start: number): string {
  if (header[start] !== '"') return /^[^;\s]*/.exec(header.slice(start))![0];
  let value = '';
  for (let i = start + 1; i < header.length; i += 1) {
    const c = header[i];
    if (c === '"') return value;
    if (c === '\\' && (header[i + 1] === '"' || header[i + 1] === '\\')) {
      value += header[i + 1];
      i += 1;
    } else value += c;
  }
  return value; // no closing quote: take the rest, as browsers do
}

/** True when position `at` lies inside a quoted-string. */
function insideQuotes(header: string, at: number): boolean {
  let quoted = false;
  for (let i = 0; i < at; i += 1) {
    if (header[i] === '\\' && quoted) i += 1;
    else if (header[i] === '"') quoted = !quoted;
  }
  return quoted;
}
