import { test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Test } from 'tap'
import type { Redis } from 'ioredis'
import { buildApp, sessionCookie, setCookies, sessionKey } from './helpers/app.js'
import { touchRoute } from './helpers/routes.js'
import { waitFor } from './helpers/redis-server.js'

/**
 * Asserts that `key` expires in `seconds`, less at most the two seconds a busy machine may take
 * between the write and this read: never for -1 (no TTL), -2 (no key) or the 86,400 s default.
 */
async function expiresIn (t: Test, client: Redis, key: string, seconds: number, message: string): Promise<void> {
  const ttl = await client.ttl(key)
  t.ok(ttl >= seconds - 2 && ttl <= seconds, `${message}: TTL ${ttl} s, expected ${seconds} s`)
}

/** Moves the absolute deadline of a stored session to `at` (epoch ms), keeping its TTL. */
async function setDeadline (client: Redis, key: string, at: number): Promise<void> {
  const doc = JSON.parse(await client.get(key) as string)
  await client.set(key, JSON.stringify({ ...doc, a: at }), 'KEEPTTL')
}

test('the idle timeout slides: a read pushes the expiry forward in the same round trip', async (t) => {
  const { app, client, prefix } = await buildApp(t, { session: { ttl: 100 } })
  const res = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const key = sessionKey(prefix, res.json().id)
  await expiresIn(t, client, key, 100, 'written with the idle ttl')
  await client.expire(key, 10)
  await app.inject({ url: '/read', headers: { cookie: sessionCookie(res) } })
  await expiresIn(t, client, key, 100, 'refreshed to the idle ttl')
})

test('an idle session expires by itself', async (t) => {
  const { app, client, prefix } = await buildApp(t, { session: { ttl: 1 } })
  const res = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const key = sessionKey(prefix, res.json().id)
  const pttl = await client.pttl(key)
  t.ok(pttl > 0 && pttl <= 1000, `a 1 s TTL (PTTL ${pttl} ms)`)
  await waitFor('Redis to expire the session', async () => await client.exists(key) === 0, { timeout: 5000 })
  const read = await app.inject({ url: '/read', headers: { cookie: sessionCookie(res) } })
  t.same(read.json().data, {})
  t.equal(read.json().isNew, true)
  t.not(read.json().id, res.json().id, 'never the old id')
})

test('the absolute deadline caps every TTL and is never extended', async (t) => {
  const { app, client, prefix } = await buildApp(t, { session: { ttl: 600, absoluteTtl: 30 } })
  const res = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const key = sessionKey(prefix, res.json().id)
  await expiresIn(t, client, key, 30, 'the write is capped')
  await app.inject({ method: 'POST', url: '/write', headers: { cookie: sessionCookie(res) }, payload: { b: 2 } })
  await expiresIn(t, client, key, 30, 'a later write too')
  await app.inject({ url: '/read', headers: { cookie: sessionCookie(res) } })
  await expiresIn(t, client, key, 30, 'and a read')
})
test('near its absolute deadline, the key lives to the millisecond no longer than the session: write, read, touch', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    session: { ttl: 600, absoluteTtl: 3 },
    routes: touchRoute
  })
  const still = await buildApp(t, {
    client,
    session: { prefix, ttl: 600, absoluteTtl: 3, rolling: false },
    routes: touchRoute
  })
  const res = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const key = sessionKey(prefix, res.json().id)
  const deadline = JSON.parse(await client.get(key) as string).a
  const cookie = sessionCookie(res)
  const created = Date.now()
  const first = await client.pttl(key)
  const createdAfter = Date.now()
  t.ok(first >= deadline - createdAfter && first <= deadline - created, `a new session: PTTL ${first} ms, the ${deadline - createdAfter} to ${deadline - created} ms left`)
  const steps: Array<[string, () => Promise<unknown>]> = [
    ['a change', () => app.inject({ method: 'POST', url: '/write', headers: { cookie }, payload: { b: 2 } })],
    ['a rolling read', () => app.inject({ url: '/read', headers: { cookie } })],
    ['touch() without rolling', () => still.app.inject({ url: '/touch', headers: { cookie } })]
  ]
  for (const [name, step] of steps) {
    await client.pexpire(key, 600_000)
    await step()
    const before = Date.now()
    const pttl = await client.pttl(key)
    const after = Date.now()
    t.ok(pttl < 600_000, `${name}: the step set the expiry`)
    t.ok(pttl >= deadline - after && pttl <= deadline - before, `${name}: PTTL ${pttl} ms, the ${deadline - after} to ${deadline - before} ms left`)
  }
})

test('a session past its absolute deadline is never returned, whatever Redis still holds', async (t) => {
  const { app, client, prefix } = await buildApp(t, { session: { absoluteTtl: 600, ttl: 600 } })
  const res = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const key = sessionKey(prefix, res.json().id)
  await setDeadline(client, key, Date.now() - 1000)
  const read = await app.inject({ url: '/read', headers: { cookie: sessionCookie(res) } })
  t.same(read.json().data, {})
  t.equal(await client.exists(key), 0, 'and it is deleted')
})

test('a save after the absolute deadline passed mid-request is refused, not stored', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    session: { absoluteTtl: 600 },
    routes: (app) => {
      app.post('/late', async (req, reply) => {
        if (req.session.isNew) return await reply.code(500).send('the session was past its deadline before the request')
        // the loaded session's own deadline, a moment away: the request outlives it
        await sleep(req.session.expiresAt - Date.now() + 20)
        req.session.set('late', true)
        return 'ok'
      })
    }
  })
  const res = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  await setDeadline(client, sessionKey(prefix, res.json().id), Date.now() + 500)
  const late = await app.inject({ method: 'POST', url: '/late', headers: { cookie: sessionCookie(res) } })
  t.equal(late.statusCode, 409)
  t.equal(late.json().code, 'FST_REDIS_SESSION_GONE')
  t.equal(await client.exists(sessionKey(prefix, res.json().id)), 0, 'the expired session was not written back')
})

test('rolling: false leaves the TTL alone on reads; touch() refreshes it without rewriting', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    session: { rolling: false, ttl: 100 },
    routes: touchRoute
  })
  const res = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const key = sessionKey(prefix, res.json().id)
  await client.expire(key, 10)
  const before = await client.get(key)
  const read = await app.inject({ url: '/read', headers: { cookie: sessionCookie(res) } })
  t.same(read.json().data, { a: 1 })
  await expiresIn(t, client, key, 10, 'a read does not extend')
  await app.inject({ url: '/touch', headers: { cookie: sessionCookie(res) } })
  await expiresIn(t, client, key, 100, 'touch() does')
  t.equal(await client.get(key), before, 'without rewriting the document')
})

test('touch() on a rolling or a new session costs nothing extra', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    routes: touchRoute
  })
  const res = await app.inject({ url: '/touch' })
  t.same(setCookies(res), [])
  const written = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  await app.inject({ url: '/touch', headers: { cookie: sessionCookie(written) } })
  await expiresIn(t, client, sessionKey(prefix, written.json().id), 86_400, 'the configured idle ttl, set once')
})

test('a persistent cookie (cookie.maxAge) is re-sent on every read and never outlives the session', async (t) => {
  const { app } = await buildApp(t, { session: { cookie: { maxAge: 3600 }, absoluteTtl: 600 } })
  const res = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const created = res.cookies[0] as { maxAge?: number }
  t.ok(created.maxAge !== undefined && created.maxAge >= 598 && created.maxAge <= 600, `capped by the absolute deadline: Max-Age ${String(created.maxAge)}, about 600`)
  const read = await app.inject({ url: '/read', headers: { cookie: sessionCookie(res) } })
  t.equal(setCookies(read).length, 1, 'refreshed on a read')
  t.equal(sessionCookie(read), sessionCookie(res), 'same id')
})

test('a browser-session cookie (no maxAge) has no Max-Age and is not re-sent on reads', async (t) => {
  const { app } = await buildApp(t)
  const res = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  t.notMatch(setCookies(res)[0], /Max-Age|Expires/)
  const read = await app.inject({ url: '/read', headers: { cookie: sessionCookie(res) } })
  t.same(setCookies(read), [])
})
