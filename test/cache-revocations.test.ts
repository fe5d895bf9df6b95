import { test } from 'tap'
import { cachePair, read, warm } from './helpers/cache.js'

// A thousand logouts on A, each of a session B holds in its cache: every one is seen by B's next
// read once its invalidation arrived. How long after A's logout returned B heard of it is
// reported (p50, p99, max), never asserted: the bound that is asserted is the lease
// (test/cache-faults.test.ts, test/cache-stale-reads.test.ts).

const COUNT = 1000

/** Resolves once `heard()` is true, checking between turns of the event loop; the ms waited after `from`. */
async function until (heard: () => boolean, from: number): Promise<number> {
  while (!heard()) await new Promise(setImmediate)
  return Math.max(0, performance.now() - from)
}

function percentile (sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]
}

test(`${COUNT} revocations on A are each seen by B's next read once the invalidation arrived`, async (t) => {
  const { a, b } = await cachePair(t)
  const sessions = await Promise.all(Array.from({ length: COUNT }, (_, i) => a.sessions.create({ userId: `u${i}` })))
  const delays: number[] = []
  let seenEnded = 0
  for (const { id, cookie } of sessions) {
    // B holds the session in its cache: its first read keeps it, the second is answered from there
    if (!(await read(b, cookie)).hit && !(await read(b, cookie)).hit) await warm(b, cookie)
    const before = b.sessions.stats().cacheInvalidations
    await a.sessions.destroy(id)
    delays.push(await until(() => b.sessions.stats().cacheInvalidations > before, performance.now()))
    const after = await read(b, cookie)
    if (!after.hit && after.res.json().isNew === true) seenEnded++
  }
  t.equal(seenEnded, COUNT, 'every logout seen by B\'s next read')
  const sorted = [...delays].sort((x, y) => x - y)
  t.comment(`invalidation heard by B after A's logout returned: p50 ${percentile(sorted, 0.5).toFixed(3)} ms, p99 ${percentile(sorted, 0.99).toFixed(3)} ms, max ${sorted.at(-1)!.toFixed(3)} ms`)
})
