import { test } from 'tap'
import diagnostics from 'node:diagnostics_channel'
import { setTimeout as sleep } from 'node:timers/promises'
import { channels } from '../lib/index.js'
import type { SessionCacheEvent } from '../types/index.js'
import { Browser } from './helpers/scale.js'
import { redisCli, waitFor } from './helpers/redis-server.js'
import { LEASE, answering, cachePair, invalidationIds, read, trackingIds, warm } from './helpers/cache.js'

// No read is answered from the cache once `lease` has passed since the last proof that the
// invalidation connection hears everything: whatever happened to that connection or to Redis.
// Each test waits out the lease from a moment before the fault began, then asserts.

/** Waits until `lease` ms have passed since `since` (performance.now()). */
async function leaseAfter (since: number): Promise<void> {
  const left = since + LEASE - performance.now()
  if (left > 0) await sleep(left)
}

const KILLED = [
  { which: 'invalidation connection', ids: invalidationIds },
  { which: 'data connection, whose tracking sends the invalidations,', ids: trackingIds }
]

for (const { which, ids } of KILLED) {
  test(`B's ${which} killed (CLIENT KILL): a write meanwhile is seen, and the cache answers again once it is back`, async (t) => {
    const { a, b, server } = await cachePair(t)
    const browser = new Browser()
    await browser.send(a, 'POST', '/login', { userId: 'carol' })
    const cookie = browser.cookie!
    await warm(b, cookie)
    const before = await ids(server.port)
    const killedAt = performance.now()
    // B registered after A: its connection has the higher id
    await redisCli(server.port, 'CLIENT', 'KILL', 'ID', before[1])
    const written = await browser.send(a, 'POST', '/write', { plan: 'pro' })
    t.equal(written.statusCode, 200, 'A wrote')
    await leaseAfter(killedAt)
    await waitFor('B\'s connection back', async () => (await ids(server.port)).length === 2)
    const seen = await read(b, cookie)
    t.notOk(seen.hit, 'not answered from the cache')
    t.same(seen.res.json().data, { userId: 'carol', plan: 'pro' }, 'the write made while the connection was down is seen')
    t.ok(b.sessions.stats().cacheLeaseExpiries >= 1, 'the stop is counted')
    await warm(b, cookie)
    t.same((await read(b, cookie)).res.json().data, { userId: 'carol', plan: 'pro' }, 'the cache answers again, with the latest version')
  })
}

test('Redis stopped (SIGSTOP): once the lease ran out, a read goes to Redis and times out instead of a cached 200; after SIGCONT the cache answers again', async (t) => {
  const { a, b, server } = await cachePair(t, { timeout: 300 })
  t.teardown(() => { server.resume() })
  const browser = new Browser()
  await browser.send(a, 'POST', '/login', { userId: 'dave' })
  const cookie = browser.cookie!
  await warm(b, cookie)
  const expiries = b.sessions.stats().cacheLeaseExpiries
  const stoppedAt = performance.now()
  server.pause()
  await leaseAfter(stoppedAt)
  const stalled = await read(b, cookie)
  t.notOk(stalled.hit, 'not answered from the cache')
  t.equal(stalled.res.statusCode, 503, 'the read went to Redis, which does not answer')
  t.equal(stalled.res.json().code, 'FST_REDIS_SESSION_STORE_UNAVAILABLE')
  t.ok(b.sessions.stats().cacheLeaseExpiries > expiries, 'the lease expiry counted')
  server.resume()
  await warm(b, cookie)
  t.same((await read(b, cookie)).res.json().data, { userId: 'dave' }, 'answers again after SIGCONT')
})

test('Redis restarted empty: once the lease ran out, B finds the session gone; then caches new sessions', async (t) => {
  const { a, b, server } = await cachePair(t)
  const browser = new Browser()
  await browser.send(a, 'POST', '/login', { userId: 'erin' })
  const cookie = browser.cookie!
  await warm(b, cookie)
  const restartedAt = performance.now()
  await server.restart()
  await leaseAfter(restartedAt)
  await waitFor('B to reach Redis again', async () => (await read(b, cookie)).res.statusCode === 200)
  const seen = await read(b, cookie)
  t.notOk(seen.hit, 'not answered from the cache')
  t.equal(seen.res.json().isNew, true, 'the session is gone')
  await answering(b)
  t.pass('the cache answers again')
})

test('FLUSHALL drops every entry; the cache goes on answering', async (t) => {
  const { a, b, redis } = await cachePair(t)
  const events: SessionCacheEvent[] = []
  const listener = (message: unknown): void => { events.push(message as SessionCacheEvent) }
  diagnostics.subscribe(channels.cache, listener)
  t.teardown(() => { diagnostics.unsubscribe(channels.cache, listener) })
  const browser = new Browser()
  await browser.send(a, 'POST', '/login', { userId: 'frank' })
  const cookie = browser.cookie!
  await warm(b, cookie)
  const flushedAt = performance.now()
  await redis.flushall()
  await leaseAfter(flushedAt)
  const seen = await read(b, cookie)
  t.notOk(seen.hit, 'not answered from the cache')
  t.equal(seen.res.json().isNew, true, 'the session is gone')
  await waitFor('both flushes', () => events.filter(e => e.state === 'flushed' && e.reason === 'flush').length >= 2)
  t.ok(events.some(e => e.state === 'flushed' && e.reason === 'flush' && e.entries >= 1), 'B dropped its entries')
  await answering(b)
  t.pass('the cache answers again')
})
