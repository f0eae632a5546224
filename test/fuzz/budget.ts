/**
 * The fuzz budget every property in test/fuzz takes: small in `npm test`,
 * large in `npm run stress`.
 *
 *   FUZZ_RUNS=N      runs per property (default: the property's own, small)
 *   FUZZ_SECONDS=S   instead, run each property for S seconds
 *   FUZZ_SEED=N      replay one run (fast-check prints the seed of a failure)
 *
 * A failure found this way becomes a seed: the counterexample fast-check
 * prints is added to the property's fixed examples (`examples`), so it is
 * checked on every run from then on.
 */
import type fc from 'fast-check';

export function budget<T>(defaultRuns: number, examples: T[] = []): fc.Parameters<T> {
  const seconds = Number(process.env.FUZZ_SECONDS ?? 0);
  const runs = Number(process.env.FUZZ_RUNS ?? defaultRuns);
  const seed = process.env.FUZZ_SEED ? { seed: Number(process.env.FUZZ_SEED) } : {};
  const time =
    seconds > 0
      ? {
          numRuns: Number.MAX_SAFE_INTEGER,
          interruptAfterTimeLimit: seconds * 1000,
          markInterruptAsFailure: false,
        }
      : { numRuns: runs };
  return { ...time, ...seed, examples };
}
