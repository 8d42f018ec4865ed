// Constants the verbs' --help shows. Kept here, away from the modules that own them
// (src/config/load.ts, src/daemon/daemon.ts), so that registering the verbs loads nothing but
// commander; test/unit/cli-main.test.ts checks that the copies agree.
import pkg from "../../package.json" with { type: "json" };

export const DEFAULT_CONFIG_PATH = "/etc/nflb/nflb.yaml";
export const DEFAULT_API = "127.0.0.1:9110";
export const VERSION: string = pkg.version;
