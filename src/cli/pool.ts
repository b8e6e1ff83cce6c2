/**
 * Runs `worker` on every item with at most `concurrency` at once; resolves
 * when all are done. The worker handles its own errors (a throw stops nothing
 * else but is re-thrown at the end).
 */
export async function runPool<T>(items: readonly T[], concurrency: number, worker: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let firstError: unknown;
  const lane = async () => {
    while (next < items.length) {
      const index = next;
      next += 1;
      try {
        await worker(items[index], index);
      } catch (err) {
        firstError ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, lane));
  if (firstError !== undefined) throw firstError;
}
