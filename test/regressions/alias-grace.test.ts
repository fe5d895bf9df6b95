// The grace window of a rotated id was only the Redis TTL of its alias, which a rolling GETEX
// resets to the full idle TTL. Two paths never put it back: an alias reached as the successor of
// another alias (rotateGrace ≥ rotateEvery), and a read through the alias that timed out in a stall
// and ran late. The old id then opened the session long after its grace and was handed the current
// id. The deadline the alias itself carries (`until`) is what must count.
import { test, type Test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import type { LightMyRequestResponse } from 'fastify'
import { buildApp, keysUnder, sessionCookie, sessionKey, setCookies } from '../helpers/app.js'
import { startRedis } from '../helpers/redis-server.js'
import { Gate } from '../helpers/gate.js'

const idOf = (cookie: string): string => decodeURIComponent(cookie.slice('sid='.length)).split('.')[0]

/** Makes the stored session look as if its id was issued `ms` ago. */
async function age (client: Redis, key: string, ms: number): Promise<void> {
  const doc = JSON.parse(await client.get(key) as string)
  await client.set(key, JSON.stringify({ ...doc, c: doc.c - ms }), 'KEEPTTL')
}

/** The deadline an alias carries, epoch ms. */
async function untilOf (client: Redis, key: string): Promise<number> {
  const alias = await client.get(key) as string
  const match = /^\{"moved":"[A-Za-z0-9_-]+","until":(\d+)\}$/.exec(alias)
  if (match === null) throw new Error(`not an alias: ${alias}`)
  return Number(match[1])
}

/** Waits until `until` is a few ms in the past (bounded: a grace window of a few seconds). */
async function pastDeadline (until: number): Promise<void> {
  await sleep(Math.max(0, until - Date.now()) + 20)
}

/**
 * A read with a stolen old id: it must get a fresh session, never the session's data or an id that
 * opens it (the current one, or a newer one should the read have rotated it again).
 */
async function anonymous (t: Test, client: Redis, prefix: string, res: LightMyRequestResponse, name: string): Promise<void> {
  t.equal(res.statusCode, 200, `${name}: answered`)
  t.same(res.json().data, {}, `${name}: no data`)
  t.equal(res.json().isNew, true, `${name}: a fresh session`)
  t.equal(await client.get(sessionKey(prefix, res.json().id as string)), null, `${name}: its id names nothing stored`)
  t.same(setCookies(res), [], `${name}: no cookie handed out`)
}

for (const rolling of [true, false]) {
  test(`an old id used past its grace deadline opens nothing, even while its alias key is still in Redis (rolling ${rolling})`, async (t) => {
    const { app, client, prefix } = await buildApp(t, { session: { rotateEvery: 60, rotateGrace: 2, rolling } })
    const created = await app.inject({ method: 'POST', url: '/write', payload: { secret: 'data' } })
    const oldCookie = sessionCookie(created)
    const oldKey = sessionKey(prefix, idOf(oldCookie))
    await age(client, oldKey, 61_000)
    const rotated = await app.inject({ url: '/read', headers: { cookie: oldCookie } })
    const until = await untilOf(client, oldKey)
    // the key outlives its alias's deadline, as a rolling read or a late command could make it
    await client.pexpire(oldKey, 3_600_000)
    await pastDeadline(until)

    await anonymous(t, client, prefix, await app.inject({ url: '/read', headers: { cookie: oldCookie } }), 'the old id')
    if (rolling) t.equal(await client.exists(oldKey), 0, 'the alias found past its deadline is ended')
    const read = await app.inject({ url: '/read', headers: { cookie: sessionCookie(rotated) } })
    t.same(read.json().data, { secret: 'data' }, 'the current id still opens the session')
  })
}

test('chained aliases (rotateGrace ≥ rotateEvery): each link ends at its own deadline, and a stolen middle id opens nothing after it', async (t) => {
  const { app, client, prefix } = await buildApp(t, { session: { rotateEvery: 1, rotateGrace: 3 } })
  const created = await app.inject({ method: 'POST', url: '/write', payload: { secret: 'data' } })
  const a = sessionCookie(created)
  await age(client, sessionKey(prefix, idOf(a)), 2000)
  const b = sessionCookie(await app.inject({ url: '/read', headers: { cookie: a } }))
  await age(client, sessionKey(prefix, idOf(b)), 2000)
  // through a, within its grace: b is due too and rotates to c, so a → b → c
  const c = sessionCookie(await app.inject({ url: '/read', headers: { cookie: a } }))
  t.not(idOf(c), idOf(b))
  const bKey = sessionKey(prefix, idOf(b))
  const untilB = await untilOf(client, bKey)

  // a rolling read through a reaches b's alias too
  await app.inject({ url: '/read', headers: { cookie: a } })
  const bEnds = await client.pexpiretime(bKey)
  t.ok(bEnds > 0 && bEnds <= untilB, `b's alias still ends at its own deadline (${bEnds - untilB} ms after it)`)

  await pastDeadline(untilB)
  await anonymous(t, client, prefix, await app.inject({ url: '/read', headers: { cookie: b } }), 'b past its grace')
})

test('an alias read that timed out in a stall and ran late keeps its grace deadline', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.stop())
  const appClient = new Redis(server.url)
  appClient.on('error', () => {})
  t.teardown(() => { appClient.disconnect() })
  const { app, client, prefix } = await buildApp(t, { client: appClient, session: { rotateEvery: 60, rotateGrace: 2, timeout: 200 } })
  const created = await app.inject({ method: 'POST', url: '/write', payload: { secret: 'data' } })
  const oldCookie = sessionCookie(created)
  const oldKey = sessionKey(prefix, idOf(oldCookie))
  await age(client, oldKey, 61_000)
  await app.inject({ url: '/read', headers: { cookie: oldCookie } })
  const until = await untilOf(client, oldKey)

  server.pause()
  try {
    const res = await app.inject({ url: '/read', headers: { cookie: oldCookie } })
    t.equal(res.statusCode, 503, 'the read through the alias failed at the timeout')
    await sleep(300)
  } finally {
    server.resume()
  }
  await client.ping() // everything the app's connection had queued has run
  const ends = await client.pexpiretime(oldKey)
  t.ok(ends <= until, `the alias still ends by its deadline (${ends - until} ms after it)`)

  await pastDeadline(until)
  await anonymous(t, client, prefix, await app.inject({ url: '/read', headers: { cookie: oldCookie } }), 'the old id past its grace')
})

test('a request in flight since before a rotation that saves past the grace deadline gets GONE, and the successor is untouched', async (t) => {
  const gate = new Gate()
  const { app, client, prefix } = await buildApp(t, {
    session: { rotateEvery: 60, rotateGrace: 2 },
    routes: (app) => {
      app.post('/slow', async (req) => {
        req.session.set('slow', true)
        await gate.hold()
        return 'ok'
      })
    }
  })
  const created = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const oldCookie = sessionCookie(created)
  const oldKey = sessionKey(prefix, idOf(oldCookie))
  const slow = app.inject({ method: 'POST', url: '/slow', headers: { cookie: oldCookie } })
  await gate.reached(1)
  await age(client, oldKey, 61_000)
  const current = idOf(sessionCookie(await app.inject({ url: '/read', headers: { cookie: oldCookie } })))
  const until = await untilOf(client, oldKey)
  await client.pexpire(oldKey, 3_600_000)
  await pastDeadline(until)

  gate.open()
  const res = await slow
  t.equal(res.statusCode, 409)
  t.equal(res.json().code, 'FST_REDIS_SESSION_GONE')
  t.notOk(setCookies(res).some(c => c.includes(current)), 'the current id is not handed out')
  t.same(JSON.parse(await client.get(sessionKey(prefix, current)) as string).d, { a: 1 }, 'the successor did not get the change')
  t.same(await keysUnder(client, prefix), [sessionKey(prefix, current)], 'the expired alias is gone')
})
