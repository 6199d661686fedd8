/** What ES2024 strings offer and the ES2023 library of this project does not declare. */
interface WellFormed {
  isWellFormed(): boolean;
  toWellFormed(): string;
}

/**
 * Whether PostgreSQL can store `text` as it is: no NUL character (text and jsonb refuse it), and
 * no surrogate that is not half of a pair (no UTF-8 encoding exists for it).
 */
export function isStorable(text: string): boolean {
  return !text.includes("\0") && (text as unknown as WellFormed).isWellFormed();
}

/** `text` with what PostgreSQL cannot store replaced by U+FFFD. */
export function storable(text: string): string {
  if (isStorable(text)) return text;
  return (text as unknown as WellFormed).toWellFormed().replaceAll("\0", "\uFFFD");
}

/**
 * Whether `text` holds a control character: C0 (U+0000-U+001F, CR and LF among them), DEL, C1
 * (U+007F-U+009F, NEL among them) or a Unicode line or paragraph separator (U+2028, U+2029).
 * Workers may put stored text into HTTP headers, request lines and logs, where any of these can
 * split a message or a line.
 */
export function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f) || c === 0x2028 || c === 0x2029) return true;
  }
  return false;
}
