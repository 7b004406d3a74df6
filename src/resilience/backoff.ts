/**
 * Retry backoff: exponential with full jitter (the AWS "full jitter" scheme, which Envoy also
 * uses), so that clients that failed together do not retry together.
 */

/**
 * Delay in ms before retry number `retryIndex` (0 for the first retry):
 * `random() * min(max, base * 2^retryIndex)`, in `[0, min(max, base * 2^retryIndex))`.
 * `random` is injectable for tests; a negative index counts as 0.
 */
export function backoffDelay(retryIndex: number, base: number, max: number, random: () => number = Math.random): number {
  const i = retryIndex > 0 ? retryIndex : 0;
  // 2 ** i overflows to Infinity for huge i, and min() then picks max: no special case needed.
  const ceiling = Math.min(max, base * 2 ** i);
  return ceiling > 0 ? random() * ceiling : 0;
}
