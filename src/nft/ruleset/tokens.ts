/** nft script text → tokens. Newlines are tokens: they end commands and rules outside braces. */
export interface Token {
  /** The text; a quoted string without its quotes. */
  t: string;
  quoted: boolean;
  line: number;
  start: number;
  end: number;
}

const PUNCT = new Set(["{", "}", ";", ",", "(", ")"]);

export class NftSyntaxError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`line ${line}: ${message}`);
  }
}

export function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let line = 1;
  let i = 0;
  while (i < src.length) {
    const c = src[i] ?? "";
    if (c === "\n") {
      out.push({ t: "\n", quoted: false, line, start: i, end: i + 1 });
      line++;
      i++;
    } else if (c === " " || c === "\t" || c === "\r") i++;
    else if (c === "#") {
      while (i < src.length && src[i] !== "\n") i++;
    } else if (c === "\\" && src[i + 1] === "\n") {
      i += 2;
      line++;
    } else if (c === '"') {
      const end = src.indexOf('"', i + 1);
      if (end < 0 || src.slice(i, end).includes("\n")) throw new NftSyntaxError(line, "unterminated string");
      out.push({ t: src.slice(i + 1, end), quoted: true, line, start: i, end: end + 1 });
      i = end + 1;
    } else if (PUNCT.has(c)) {
      out.push({ t: c, quoted: false, line, start: i, end: i + 1 });
      i++;
    } else {
      // A raw payload expression (`@th,64,128`) keeps its commas.
      const raw = /^@[a-z]+,\d+,\d+/.exec(src.slice(i, i + 40));
      let j = raw ? i + raw[0].length : i;
      while (j < src.length && !/[\s"#{};,()]/.test(src[j] ?? "")) j++;
      out.push({ t: src.slice(i, j), quoted: false, line, start: i, end: j });
      i = j;
    }
  }
  return out;
}
