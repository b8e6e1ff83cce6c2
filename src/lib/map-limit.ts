/**
 * Runs `fn` over `items`, at most `limit` calls in flight, and returns the results in order.
 * Bounds the parallel file reads or requests of listings with details, recovery and album copies.
 * @param limit calls at once (≥ 1)
 * @throws the first error of `fn`; calls already started still run to their end
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
