/**
 * Text PostgreSQL cannot store: a NUL character (text and jsonb refuse it), or a surrogate that is
 * not half of a pair (no UTF-8 encoding exists for it).
 */
// eslint-disable-next-line no-control-regex -- NUL is exactly what it looks for.
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Whether PostgreSQL can store `text` as it is. */
export function isStorable(text: string): boolean {
  return !UNSTORABLE.test(text);
}

/** `text` with what PostgreSQL cannot store replaced by U+FFFD. */
export function storable(text: string): string {
  return isStorable(text) ? text : text.replace(new RegExp(UNSTORABLE.source, "g"), "\uFFFD");
}
