import { test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { Browser, accountApp } from './helpers/scale.js'
import { redisCli, startRedis, waitFor } from './helpers/redis-server.js'
import { LEASE, TrackingStall, answering, appClient, cachePair, invalidationIds, trackingIds, warm, type CachePair } from './helpers/cache.js'
import { uniquePrefix } from './helpers/app.js'

// A writes a version number in a loop, B reads in a loop (its cache on). A read of B that started
// more than `lease` after A's save of version n was acknowledged must see n or later: the count of
// those that did not is the number of stale reads, and must be 0, also while faults happen.

const RUN_MS = 1500
const MAX_WRITES = 2000

interface Outcome {
  writes: number
  reads: number
  stale: number
  hits: number
}

async function staleRun (b: FastifyInstance, a: FastifyInstance, cookie: string, fault?: () => Promise<void>): Promise<Outcome> {
  const acked: Array<{ v: number, at: number }> = []
  const endAt = performance.now() + RUN_MS
  let reads = 0
  let stale = 0
  const hits = b.sessions.stats().cacheHits
  const writer = async (): Promise<void> => {
    for (let v = 1; v <= MAX_WRITES && performance.now() < endAt; v++) {
      const res = await a.inject({ method: 'POST', url: '/write', headers: { cookie }, payload: { v } })
      if (res.statusCode === 200) acked.push({ v, at: performance.now() })
    }
  }
  const reader = async (): Promise<void> => {
    while (performance.now() < endAt) {
      // a hit settles without I/O: without a turn of the event loop between reads, the writer would starve
      await new Promise(setImmediate)
      const startedAt = performance.now()
      const res = await b.inject({ url: '/me', headers: { cookie } })
      if (res.statusCode !== 200) continue
      reads++
      const seen = (res.json().data.v as number | undefined) ?? 0
      // the newest version acknowledged more than a lease before this read began
      let owed = 0
      for (const { v, at } of acked) if (at < startedAt - LEASE) owed = v
      if (seen < owed) stale++
    }
  }
  await Promise.all([writer(), reader(), fault?.()])
  return { writes: acked.length, reads, stale, hits: b.sessions.stats().cacheHits - hits }
}

async function session (pair: CachePair): Promise<string> {
  const browser = new Browser()
  await browser.send(pair.a, 'POST', '/login', { userId: 'versions' })
  return browser.cookie!
}

test('no stale read in a normal run', async (t) => {
  const pair = await cachePair(t)
  const outcome = await staleRun(pair.b, pair.a, await session(pair))
  t.ok(outcome.writes > 10 && outcome.reads > 10, `${outcome.writes} writes, ${outcome.reads} reads`)
  t.ok(outcome.hits > 0, `the cache answered ${outcome.hits} of them`)
  t.equal(outcome.stale, 0, 'no stale read')
})

test('no stale read while the caches\' connections (data and invalidations) are killed and Redis is stopped for twice the lease', async (t) => {
  const pair = await cachePair(t)
  const { server } = pair
  t.teardown(() => { server.resume() })
  const outcome = await staleRun(pair.b, pair.a, await session(pair), async () => {
    await sleep(RUN_MS / 4)
    for (const id of [...await invalidationIds(server.port), ...await trackingIds(server.port)]) await redisCli(server.port, 'CLIENT', 'KILL', 'ID', id)
    // answering again before the next fault, so that it stops twice (its probe session is written once Redis is reachable)
    await waitFor('B\'s cache to answer again', async () => await answering(pair.b).then(() => true, () => false))
    await sleep(RUN_MS / 4)
    server.pause()
    await sleep(2 * LEASE)
    server.resume()
  })
  t.ok(outcome.writes > 10 && outcome.reads > 10, `${outcome.writes} writes, ${outcome.reads} reads`)
  t.equal(outcome.stale, 0, 'no stale read')
  t.ok(pair.b.sessions.stats().cacheLeaseExpiries >= 2, 'the cache stopped answering twice (the kill, the stop)')
})

test('no stale read while the invalidation connection alone stalls silently (its replies held back) for three times the lease', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.kill())
  const proxy = await TrackingStall.start(t, server.port)
  t.teardown(() => { proxy.resume() })
  const prefix = uniquePrefix()
  const options = { prefix, userKey: 'userId', cache: { lease: LEASE } }
  const a = await accountApp(t, appClient(t, server.url), options)
  // B's connections, data and invalidations, both go through the proxy, which holds back only the latter's replies
  const b = await accountApp(t, appClient(t, proxy.url), options)
  await Promise.all([answering(a), answering(b)])
  const browser = new Browser()
  await browser.send(a, 'POST', '/login', { userId: 'versions' })
  const cookie = browser.cookie!
  await warm(b, cookie)
  const expiries = b.sessions.stats().cacheLeaseExpiries
  const outcome = await staleRun(b, a, cookie, async () => {
    await sleep(RUN_MS / 4)
    proxy.stall()
    await sleep(3 * LEASE)
    proxy.resume()
  })
  t.ok(outcome.writes > 10 && outcome.reads > 10, `${outcome.writes} writes, ${outcome.reads} reads`)
  t.ok(outcome.hits > 0, `the cache answered ${outcome.hits} of them`)
  t.equal(outcome.stale, 0, 'no stale read')
  t.ok(b.sessions.stats().cacheLeaseExpiries > expiries, 'the cache stopped answering during the stall')
})
