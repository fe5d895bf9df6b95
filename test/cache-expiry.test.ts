import { test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { sessionKey } from './helpers/app.js'
import { cachePair, invalidations, read, warm } from './helpers/cache.js'

// What the cache keeps is bounded by time as the session is: never past its idle or absolute
// deadline; and a hit does not push the idle expiry forward, a load once per `refreshEvery` does.

test('a session past its absolute deadline is never answered from the cache', async (t) => {
  const { a, b } = await cachePair(t, { absoluteTtl: 1, ttl: 60 })
  const { cookie } = await a.sessions.create({ userId: 'gina' })
  await warm(b, cookie)
  await sleep(1100)
  const seen = await read(b, cookie)
  t.notOk(seen.hit)
  t.equal(seen.res.json().isNew, true, 'ended')
})

test('a hit leaves the idle expiry alone; a load after refreshEvery pushes it forward, once', async (t) => {
  const { a, b, redis, prefix } = await cachePair(t, { ttl: 10, cache: { lease: 250, refreshEvery: 0.3 } })
  const { id, cookie } = await a.sessions.create({ userId: 'hal' })
  const key = sessionKey(prefix, id)
  await warm(a, cookie)
  const before = await redis.pttl(key)
  await warm(a, cookie)
  t.ok(await redis.pttl(key) <= before, 'a hit does not refresh the TTL')
  await sleep(400)
  const aged = await redis.pttl(key)
  const due = await read(a, cookie)
  t.notOk(due.hit, 'a load due for a refresh goes to Redis')
  t.ok(await redis.pttl(key) > aged + 200, 'and pushes the idle expiry forward')
  await warm(a, cookie)
  t.pass('then the cache answers again')

  // B never read it: its first load is a plain read, and finds the refresh due once refreshEvery passed
  await sleep(400)
  const stale = await redis.pttl(key)
  const first = await read(b, cookie)
  t.notOk(first.hit)
  t.equal(first.res.json().data.userId, 'hal')
  t.ok(await redis.pttl(key) > stale + 200, 'a plain read that finds the refresh due makes it')
})

test('a session with a shorter TTL of its own is refreshed at a tenth of it', async (t) => {
  const { a, redis, prefix } = await cachePair(t, { ttl: 60 })
  const { id, cookie } = await a.sessions.create({ userId: 'ivy' }, { ttl: 2 })
  const key = sessionKey(prefix, id)
  await warm(a, cookie)
  await sleep(250)
  const aged = await redis.pttl(key)
  t.notOk((await read(a, cookie)).hit, 'due after 200 ms, not after the configured 6 s')
  t.ok(await redis.pttl(key) > aged + 100, 'refreshed')
})

test('without rolling, entries are never due for a refresh', async (t) => {
  const { a, redis, prefix } = await cachePair(t, { ttl: 10, rolling: false, cache: { lease: 250, refreshEvery: 0.1 } })
  const { id, cookie } = await a.sessions.create({ userId: 'jay' })
  await warm(a, cookie)
  const before = await redis.pttl(sessionKey(prefix, id))
  await sleep(200)
  await warm(a, cookie)
  t.ok(await redis.pttl(sessionKey(prefix, id)) < before, 'still answered from the cache, and the TTL left alone')
})

test('a session due for a new id is loaded from Redis and rotated; the old id still leads to it', async (t) => {
  const { a, b } = await cachePair(t, { rotateEvery: 1 })
  const { cookie } = await a.sessions.create({ userId: 'kim' })
  await warm(b, cookie)
  await sleep(1100)
  const rotated = await read(b, cookie)
  t.notOk(rotated.hit, 'not answered from the cache')
  const fresh = rotated.res.cookies.find(c => c.name === 'sid')
  t.ok(fresh !== undefined, 'a new cookie')
  t.equal(b.sessions.stats().rotated, 1)
  for (let i = 0; i < 3; i++) {
    const old = await read(b, cookie)
    t.equal(old.res.json().data.userId, 'kim', 'the old id leads to the session')
  }
  const next = `sid=${fresh!.value}`
  await warm(b, next)
  t.equal((await read(b, next)).res.json().data.userId, 'kim', 'the new id is cached')
})

test('an unreadable stored value is discarded, not cached', async (t) => {
  const { a, redis, prefix } = await cachePair(t)
  const { id, cookie } = await a.sessions.create({ userId: 'lee' })
  await warm(a, cookie)
  const before = a.sessions.stats().cacheInvalidations
  await redis.set(sessionKey(prefix, id), 'not json', 'KEEPTTL')
  // written by another connection: seen once its invalidation arrived
  await invalidations(a, before)
  const seen = await read(a, cookie)
  t.equal(seen.res.json().isNew, true, 'a fresh session')
  t.equal(await redis.exists(sessionKey(prefix, id)), 0, 'the value deleted')
})
