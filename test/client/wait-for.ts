/**
 * Polls `probe` until it returns something other than undefined, null or false, and returns it.
 * Fails with `what` once `timeoutMs` has passed: tests wait for conditions, never for fixed times.
 */
export async function waitFor<T>(
  probe: () => T | undefined | null | false,
  timeoutMs = 5000,
  what = "condition",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== null && value !== false) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
