// Config text the unit tests start from, and what the parser refuses a text with.
import assert from "node:assert/strict";
import { ConfigError, type ConfigIssue } from "../src/config/issues.ts";
import { parseConfig } from "../src/config/load.ts";

/** Two uplinks, isp1 on wan1 and isp2 on wan2, weights 3:1; every key on a line of its own. */
export const TWO_UPLINKS = `version: 1
uplinks:
  isp1:
    interface: wan1
    gateway: 100.64.1.1
    weight: 3
  isp2:
    interface: wan2
    gateway: 100.64.2.1
    weight: 1
`;

/** Two uplinks, each probing a target of its own; every key on a line of its own. */
export const TWO_PROBED_UPLINKS = `version: 1
uplinks:
  isp1:
    interface: wan1
    gateway: 100.64.1.1
    probe: { targets: [198.18.100.1] }
  isp2:
    interface: wan2
    gateway: 100.64.2.1
    probe: { targets: [198.18.100.2] }
`;

/** The issues `parseConfig` refuses `text` with; the test fails when the text is accepted. */
export function issuesOf(text: string): ConfigIssue[] {
  try {
    parseConfig(text);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.issues;
  }
  assert.fail("config was accepted");
}
