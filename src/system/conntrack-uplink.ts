/**
 * conntrack's events for the uplinks' passive health: every NEW connection, every UPDATE and every
 * DESTROY, as lines, so that the first answer to a new outgoing connection (TCP SYN-ACK or RST, the
 * first UDP reply) is seen the moment the kernel sees it. Only the fields passive health needs are
 * read:
 *
 *   [1796312231.604922]     [NEW] tcp 6 120 SYN_SENT src=C dst=S sport=P dport=443 [UNREPLIED] src=S dst=WAN … mark=256 id=N
 *   [1796312231.605088]  [UPDATE] tcp 6 60 SYN_RECV src=C dst=S sport=P dport=443 src=S dst=WAN … mark=256 id=N
 *   [1796312231.605120] [DESTROY] tcp 6 120 CLOSE src=C dst=S sport=P dport=443 [UNREPLIED] src=S dst=WAN … mark=256 id=N
 *
 * An UPDATE without `[UNREPLIED]` says the connection got its first answer (conntrack clears the
 * flag on the first reply-direction packet). A refusal is different: a RST while the entry has
 * seen no reply makes the kernel delete the entry at once (nf_conntrack_proto_tcp: "if only reply
 * is a RST … delete the conntrack immediately"), before it marks the reply seen, so conntrack
 * reports no UPDATE, only a DESTROY still `[UNREPLIED]`, in state CLOSE. The other DESTROYs of an
 * unanswered entry look different (checked with conntrack 1.4.7 in a lab): one deleted by a tool
 * (`conntrack -D`, nflb's flush on down) is still SYN_SENT and carries `[USERSPACE]`; one that timed
 * out is SYN_SENT, after 120 s. The uplink is the conntrack mark nflb gave it.
 */

/**
 * `conntrack -E` for NEW, UPDATE and DESTROY events. A large socket buffer so that a burst of new
 * connections does not overflow it; what is lost anyway only costs passive health a sample.
 * (conntrack 1.4.7 sets `-b` on its query socket, not on the event socket it reads: strace shows
 * SO_RCVBUFFORCE on one netlink socket and the groups bound on another, so the events get
 * net.core.rmem_default. Kept for the versions that fix it; fewer events per connection, below,
 * are what make an overflow less likely here.)
 * conntrack 1.4.7 applies every filter of -E (`--mark`, `-p`, `--state`, `--status`) in user
 * space, after it has received and parsed the event (it attaches no socket filter; its output is
 * a write per event), and one `--mark VALUE/MASK` cannot name every uplink: the daemon filters
 * by mark itself. The kernel can filter instead (opt-in, `balance.conntrack_events: minimal`): the
 * connections nflb balances then report only NEW, their first answer and DESTROY (`ct event set`,
 * see PASSIVE_CT_EVENTS in src/plan/nft-uplinks.ts), 3 lines per TCP connection instead of ~7.
 */
export function uplinkEventsArgv(bufferBytes = 16 * 1024 * 1024): string[] {
  // `timestamp`: when conntrack received the event (its gettimeofday; conntrack reads as the kernel
  // sends), so a daemon that reads late still times silences right.
  return ["conntrack", "-E", "-e", "NEW,UPDATE,DESTROY", "-b", String(bufferBytes), "-o", "timestamp,id"];
}

export interface UplinkFlowEvent {
  type: "new" | "update" | "destroy";
  protocol: "tcp" | "udp";
  id: number;
  /** The conntrack mark (the whole 32 bits; the caller masks it). */
  mark: number;
  /** No reply-direction packet seen yet. */
  unreplied: boolean;
  /** When conntrack received it from the kernel (epoch ms, `-o timestamp`), when the line says. */
  at?: number;
  /**
   * DESTROY only: a TCP entry the kernel closed itself (state CLOSE, not deleted from user space):
   * with `unreplied`, the far end refused the connection with a RST.
   */
  reset?: boolean;
}

/** Longer lines are not conntrack's (an IPv6 entry with every option is under 400 bytes). */
const MAX_LINE = 1024;

/**
 * One event line; null for anything else (other protocols, summaries, junk). Pure, and
 * cheap: a few indexOf calls, no regular expression over the whole line (this runs for every
 * state change of every connection of the router).
 */
export function parseUplinkFlowLine(line: string): UplinkFlowEvent | null {
  if (line.length > MAX_LINE) return null;
  let i = 0;
  let at: number | undefined;
  if (line.charCodeAt(0) === 91 /* [ */) {
    const end = line.indexOf("]");
    const ts = end > 0 && end < 24 ? line.slice(1, end) : "";
    if (/^\d{1,12}\.\d{1,9}$/.test(ts)) {
      at = Number(ts) * 1000;
      i = end + 1;
    }
  }
  while (line.charCodeAt(i) === 32 || line.charCodeAt(i) === 9) i++;
  let type: UplinkFlowEvent["type"];
  if (line.startsWith("[NEW]", i)) {
    type = "new";
    i += 5;
  } else if (line.startsWith("[UPDATE]", i)) {
    type = "update";
    i += 8;
  } else if (line.startsWith("[DESTROY]", i)) {
    type = "destroy";
    i += 9;
  } else return null;
  while (line.charCodeAt(i) === 32) i++;
  let protocol: UplinkFlowEvent["protocol"];
  if (line.startsWith("tcp ", i)) protocol = "tcp";
  else if (line.startsWith("udp ", i)) protocol = "udp";
  else return null;
  const mark = numberAfter(line, " mark=");
  const id = numberAfter(line, " id=");
  if (mark === null || id === null) return null;
  const e: UplinkFlowEvent = { type, protocol, id, mark, unreplied: line.includes("[UNREPLIED]", i) };
  if (at !== undefined) e.at = at;
  if (type === "destroy")
    e.reset = protocol === "tcp" && line.includes(" CLOSE src=", i) && !line.includes("[USERSPACE]", i);
  return e;
}

/** The decimal number right after the last `key` in the line (at most 10 digits, ≤ 2^32-1). */
function numberAfter(line: string, key: string): number | null {
  const k = line.lastIndexOf(key);
  if (k < 0) return null;
  let j = k + key.length;
  const start = j;
  while (j < line.length && j - start <= 10) {
    const c = line.charCodeAt(j);
    if (c < 48 || c > 57) break;
    j++;
  }
  if (j === start || j - start > 10) return null;
  if (j < line.length && line.charCodeAt(j) !== 32 && line.charCodeAt(j) !== 9) return null;
  const n = Number(line.slice(start, j));
  return n <= 0xffffffff ? n : null;
}
