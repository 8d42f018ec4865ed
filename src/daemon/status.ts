// The status JSON is the HTTP API's contract (src/api/status.ts); the daemon builds it, so it
// imports the types downward, and the modules that take them from here keep working.
export type * from "../api/status.ts";
