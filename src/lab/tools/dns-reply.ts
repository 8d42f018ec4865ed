// Just enough DNS for a `dns` probe to get a well-formed answer: echo the question, answer
// A/AAAA with a fixed documentation address, anything else with NOERROR and no records.

export const DNS_ANSWER_A = [192, 0, 2, 53];
/** 2001:db8::53 */
export const DNS_ANSWER_AAAA = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53];

const TYPE_A = 1;
const TYPE_AAAA = 28;
const CLASS_IN = 1;
const HEADER_LEN = 12;

/** End offset of the single question, or undefined for anything malformed or compressed. */
function questionEnd(query: Buffer): number | undefined {
  let off = HEADER_LEN;
  for (let labels = 0; labels < 128; labels++) {
    const len = query[off];
    if (len === undefined) return undefined;
    if (len === 0) {
      off += 1;
      return off + 4 <= query.length ? off + 4 : undefined;
    }
    if (len > 63) return undefined;
    off += 1 + len;
  }
  return undefined;
}

export function dnsReply(query: Buffer): Buffer | undefined {
  if (query.length < HEADER_LEN) return undefined;
  const flags = query.readUInt16BE(2);
  const isResponse = (flags & 0x8000) !== 0;
  const opcode = (flags >> 11) & 0xf;
  if (isResponse || opcode !== 0 || query.readUInt16BE(4) !== 1) return undefined;
  const end = questionEnd(query);
  if (end === undefined) return undefined;
  const qtype = query.readUInt16BE(end - 4);
  const qclass = query.readUInt16BE(end - 2);
  const rdata =
    qclass !== CLASS_IN
      ? undefined
      : qtype === TYPE_A
        ? DNS_ANSWER_A
        : qtype === TYPE_AAAA
          ? DNS_ANSWER_AAAA
          : undefined;

  const header = Buffer.alloc(HEADER_LEN);
  query.copy(header, 0, 0, 2);
  // QR, AA and RA set; RD copied; RCODE 0.
  header.writeUInt16BE(0x8000 | 0x0400 | (flags & 0x0100) | 0x0080, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(rdata ? 1 : 0, 6);
  const parts = [header, query.subarray(HEADER_LEN, end)];
  if (rdata) {
    const rr = Buffer.alloc(12);
    rr.writeUInt16BE(0xc000 | HEADER_LEN, 0); // pointer to the question's name
    rr.writeUInt16BE(qtype, 2);
    rr.writeUInt16BE(CLASS_IN, 4);
    rr.writeUInt32BE(60, 6);
    rr.writeUInt16BE(rdata.length, 10);
    parts.push(rr, Buffer.from(rdata));
  }
  return Buffer.concat(parts);
}
