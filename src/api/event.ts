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
}

export type NewEvent = Omit<DaemonEvent, "id" | "at">;
