/** One state change, as logged, sent to the API's event stream and to the on_change hook. */
export interface DaemonEvent {
  id: number;
  /** ISO time. */
  at: string;
  kind: "uplink" | "backend" | "cluster" | "daemon";
  /** Uplink name; `SERVICE/ADDRESS:PORT` for a backend; node name for the cluster. */
  name: string;
  state: string;
  reason: string;
  service?: string;
  backend?: string;
  /** An uplink event about one family (its IPv4 or IPv6 alone went down or came back). */
  family?: "ipv4" | "ipv6";
}

export type NewEvent = Omit<DaemonEvent, "id" | "at">;
