// The fuzz suite's budget and seed. CI runs each property a bounded number of times (the whole suite
// stays well under a minute on 2 cores); FERRY_FUZZ_RUNS multiplies every count for a deeper local
// run. The seed is random unless FERRY_FUZZ_SEED fixes it; fast-check names seed and path in every
// failure, and FERRY_FUZZ_SEED plus FERRY_FUZZ_PATH replay exactly that counterexample.
import type { Parameters } from 'fast-check';

const factor = Number(process.env.FERRY_FUZZ_RUNS ?? '1');
if (!(factor > 0))
  throw new Error(`FERRY_FUZZ_RUNS must be a positive number, not ${process.env.FERRY_FUZZ_RUNS}`);

const envSeed = process.env.FERRY_FUZZ_SEED;
export const SEED = envSeed !== undefined ? Number(envSeed) : (Date.now() ^ (Math.random() * 2 ** 31)) | 0;
const path = process.env.FERRY_FUZZ_PATH;

process.stderr.write(`fuzz: seed ${SEED} (FERRY_FUZZ_SEED=${SEED} reproduces), runs ×${factor}\n`);

/** fast-check parameters for a property run `base` times in CI. */
export function budget<T>(base: number): Parameters<T> {
  return {
    numRuns: Math.max(1, Math.round(base * factor)),
    seed: SEED,
    ...(path !== undefined ? { path } : {}),
  };
}

/** A string secret values are drawn from: no message, status or error may ever contain it. */
export const CANARY = 'canary-7f3a9e-SECRET';
