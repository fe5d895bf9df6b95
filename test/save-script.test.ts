import { test, type Test } from 'tap'
import type { Redis } from 'ioredis'
import { SessionStore } from '../lib/redis/store.js'
import { newStats } from '../lib/model/stats.js'
import { KeyExpiry } from '../lib/model/expiry.js'
import { connect, uniquePrefix } from './helpers/app.js'

// What the save script leaves in Redis in each case; the writer's retries are tested elsewhere.

const CONFIGURED_TTL = 500

interface Stored { client: Redis, store: SessionStore, key: string }

async function storeFor (t: Test): Promise<Stored> {
  const client = await connect(t)
  const prefix = uniquePrefix()
  return { client, store: new SessionStore({ client, prefix, timeout: 2000, stats: newStats() }), key: prefix + 'id' }
}

/** A stored document as the plugin writes it: version, absolute deadline, own TTL first. */
function documentText (version: number, secondsToDeadline: number, ownTtl = 0): string {
  const now = Date.now()
  return `{"v":${version},"a":${now + secondsToDeadline * 1000},"t":${ownTtl},"c":${now},"d":{"by":"writer ${version}"}}`
}

async function storedState (client: Redis, key: string): Promise<{ text: string | null, ttl: number }> {
  const [text, ttl] = await Promise.all([client.get(key), client.ttl(key)])
  return { text, ttl }
}

/** An expiry `seconds` from now, as the writer hands it to the store: PX, in ms. */
function inSeconds (seconds: number): KeyExpiry {
  return new KeyExpiry('PX', seconds * 1000, Date.now() + seconds * 1000)
}

test('no conflict: one SET … GET writes the new document with the given TTL', async (t) => {
  const { client, store, key } = await storeFor(t)
  t.same(await store.save('id', 0, documentText(1, 3600), inSeconds(100), CONFIGURED_TTL), { status: 'saved' }, 'a new session')
  const next = documentText(2, 3600)
  t.same(await store.save('id', 1, next, inSeconds(200), CONFIGURED_TTL), { status: 'saved' }, 'over the version it loaded')
  t.same(await storedState(client, key), { text: next, ttl: 200 })
})

test('a conflict returns the newer document and leaves it as it was, with the TTL its metadata gives', async (t) => {
  const { client, store, key } = await storeFor(t)
  const cases = [
    { name: 'configured ttl', text: documentText(7, 3600), ttl: CONFIGURED_TTL },
    { name: 'its own ttl', text: documentText(7, 3600, 300), ttl: 300 },
    { name: 'capped by its deadline', text: documentText(7, 50, 300), ttl: 50 }
  ]
  for (const { name, text, ttl } of cases) {
    await client.set(key, text, 'EX', 1000)
    const result = await store.save('id', 6, documentText(7, 3600, 900), inSeconds(900), CONFIGURED_TTL)
    t.same(result, { status: 'conflict', current: text }, `${name}: the stored document comes back`)
    const after = await storedState(client, key)
    t.equal(after.text, text, `${name}: not overwritten`)
    t.ok(after.ttl <= ttl && after.ttl >= ttl - 2, `${name}: TTL ${after.ttl} s, expected ${ttl} s`)
  }
})

test('a conflicting document past its absolute deadline is deleted, and the session is gone', async (t) => {
  const { client, store, key } = await storeFor(t)
  await client.set(key, documentText(7, -5), 'EX', 1000)
  t.same(await store.save('id', 6, documentText(7, 3600), inSeconds(100), CONFIGURED_TTL), { status: 'gone' })
  t.equal(await client.exists(key), 0)
})

test('a stored value that is no session document is put back unchanged and reported as a conflict', async (t) => {
  const { client, store, key } = await storeFor(t)
  await client.set(key, 'not a session', 'EX', 1000)
  t.same(await store.save('id', 3, documentText(4, 3600), inSeconds(100), CONFIGURED_TTL), { status: 'conflict', current: 'not a session' })
  t.same(await storedState(client, key), { text: 'not a session', ttl: 100 }, 'kept, with the TTL of the attempted write')
})

test('a destroyed session is never written back; a new id already in use is not overwritten', async (t) => {
  const { client, store, key } = await storeFor(t)
  t.same(await store.save('id', 3, documentText(4, 3600), inSeconds(100), CONFIGURED_TTL), { status: 'gone' })
  t.equal(await client.exists(key), 0, 'the key written by SET … GET was removed in the same step')
  const taken = documentText(1, 3600)
  await client.set(key, taken, 'EX', 1000)
  t.same(await store.save('id', 0, documentText(1, 3600), inSeconds(100), CONFIGURED_TTL), { status: 'conflict', current: taken })
  t.equal(await client.get(key), taken)
})

test('a key of another type is refused by Redis and left alone', async (t) => {
  const { client, store, key } = await storeFor(t)
  await client.rpush(key, 'x')
  await t.rejects(store.save('id', 1, documentText(2, 3600), inSeconds(100), CONFIGURED_TTL), { code: 'FST_REDIS_SESSION_STORE_UNAVAILABLE' })
  t.same(await client.lrange(key, 0, -1), ['x'])
})

test('near its deadline the key expires at the deadline itself (PXAT), never later', async (t) => {
  const { client, store, key } = await storeFor(t)
  const deadline = Date.now() + 1500
  const text = `{"v":1,"a":${deadline},"t":0,"c":${Date.now()},"d":{}}`
  t.same(await store.save('id', 0, text, new KeyExpiry('PXAT', deadline, deadline), CONFIGURED_TTL), { status: 'saved' })
  const before = Date.now()
  const pttl = await client.pttl(key)
  const after = Date.now()
  t.ok(pttl >= deadline - after && pttl <= deadline - before, `PTTL ${pttl} ms, the ${deadline - after} to ${deadline - before} ms left`)
})

test('a conflicting document near its deadline is put back to expire at its deadline, in ms', async (t) => {
  const { client, store, key } = await storeFor(t)
  const deadline = Date.now() + 1500
  const text = `{"v":7,"a":${deadline},"t":0,"c":${Date.now()},"d":{}}`
  await client.set(key, text, 'EX', 1000)
  t.same(await store.save('id', 6, documentText(7, 3600), inSeconds(900), CONFIGURED_TTL), { status: 'conflict', current: text })
  const before = Date.now()
  const pttl = await client.pttl(key)
  const after = Date.now()
  t.ok(pttl >= deadline - after && pttl <= deadline - before, `PTTL ${pttl} ms, the ${deadline - after} to ${deadline - before} ms left`)
})
