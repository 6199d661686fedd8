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
