/**
 * Credentials in URLs (`http://user:secret@host`) never reach an error message or a log line:
 * the user-info part becomes `***`. Works on free text, so it can wrap any message.
 */
export function redactUrlCredentials(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@"']*@/gi, "$1***@");
}

/** Keys whose values are secrets: their issues name the key, never the value. */
export const SECRET_KEYS = new Set(["token", "password", "username", "key", "secret"]);
