import { test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { buildApp, sessionCookie, setCookies, sessionKey } from './helpers/app.js'

async function storedTtl (client: { ttl (key: string): Promise<number> }, key: string): Promise<number> {
  return await client.ttl(key)
}

/** Whether `key` expires in 1 to `max` seconds: never for -1 (no TTL) or -2 (no key). */
async function expiresWithin (client: { ttl (key: string): Promise<number> }, key: string, max: number): Promise<boolean> {
  const ttl = await storedTtl(client, key)
  return ttl > 0 && ttl <= max
}

test('the idle timeout slides: a read pushes the expiry forward in the same round trip', async (t) => {
  const { app, client, prefix } = await buildApp(t, { session: { ttl: 100 } })
  const res = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const key = sessionKey(prefix, res.json().id)
  t.ok(await storedTtl(client, key) > 95)
  await client.expire(key, 10)
  await app.inject({ url: '/read', headers: { cookie: sessionCookie(res) } })
  t.ok(await storedTtl(client, key) > 95, 'refreshed to the idle ttl')
})

test('an idle session expires by itself', async (t) => {
  const { app } = await buildApp(t, { session: { ttl: 1 } })
  const res = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  await sleep(2100)
  const read = await app.inject({ url: '/read', headers: { cookie: sessionCookie(res) } })
  t.same(read.json().data, {})
  t.equal(read.json().isNew, true)
  t.not(read.json().id, res.json().id, 'never the old id')
})

test('the absolute deadline caps every TTL and is never extended', async (t) => {
  const { app, client, prefix } = await buildApp(t, { session: { ttl: 600, absoluteTtl: 30 } })
  const res = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const key = sessionKey(prefix, res.json().id)
  t.ok(await expiresWithin(client, key, 30), 'the write is capped')
  await app.inject({ method: 'POST', url: '/write', headers: { cookie: sessionCookie(res) }, payload: { b: 2 } })
  t.ok(await expiresWithin(client, key, 30), 'a later write too')
  await app.inject({ url: '/read', headers: { cookie: sessionCookie(res) } })
  t.ok(await expiresWithin(client, key, 30), 'and a read')
})

test('near its absolute deadline, the key lives to the millisecond no longer than the session: write, read, touch', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    session: { ttl: 600, absoluteTtl: 3 },
    routes: (app) => {
      app.get('/touch', async (req) => { req.session.touch(); return 'ok' })
    }
  })
  const still = await buildApp(t, {
    client,
    session: { prefix, ttl: 600, absoluteTtl: 3, rolling: false },
    routes: (app) => {
      app.get('/touch', async (req) => { req.session.touch(); return 'ok' })
    }
  })
  const res = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const key = sessionKey(prefix, res.json().id)
  const deadline = JSON.parse(await client.get(key) as string).a
  const cookie = sessionCookie(res)
  const created = Date.now()
  const first = await client.pttl(key)
  t.ok(first > 0 && first <= deadline - created, `a new session: PTTL ${first} ms, at most the ${deadline - created} ms left`)
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
    t.ok(pttl < 600_000, `${name}: the step set the expiry`)
    t.ok(pttl > 0 && pttl <= deadline - before, `${name}: PTTL ${pttl} ms, at most the ${deadline - before} ms left`)
  }
})

test('a session past its absolute deadline is never returned, whatever Redis still holds', async (t) => {
  const { app, client, prefix } = await buildApp(t, { session: { absoluteTtl: 1, ttl: 600 } })
  const res = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const key = sessionKey(prefix, res.json().id)
  await client.expire(key, 600)
  await sleep(1100)
  const read = await app.inject({ url: '/read', headers: { cookie: sessionCookie(res) } })
  t.same(read.json().data, {})
  t.equal(await client.exists(key), 0, 'and it is deleted')
})

test('a save after the absolute deadline passed mid-request is refused, not stored', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    session: { absoluteTtl: 1 },
    routes: (app) => {
      app.post('/late', async (req) => {
        await sleep(1100)
        req.session.set('late', true)
        return 'ok'
      })
    }
  })
  const res = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const late = await app.inject({ method: 'POST', url: '/late', headers: { cookie: sessionCookie(res) } })
  t.equal(late.statusCode, 409)
  t.equal(late.json().code, 'FST_REDIS_SESSION_GONE')
  t.equal(await client.exists(sessionKey(prefix, res.json().id)), 0, 'the expired session was not written back')
})

test('rolling: false leaves the TTL alone on reads; touch() refreshes it without rewriting', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    session: { rolling: false, ttl: 100 },
    routes: (app) => {
      app.get('/touch', async (req) => { req.session.touch(); return 'ok' })
    }
  })
  const res = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const key = sessionKey(prefix, res.json().id)
  await client.expire(key, 10)
  const before = await client.get(key)
  const read = await app.inject({ url: '/read', headers: { cookie: sessionCookie(res) } })
  t.same(read.json().data, { a: 1 })
  t.ok(await expiresWithin(client, key, 10), 'a read does not extend')
  await app.inject({ url: '/touch', headers: { cookie: sessionCookie(res) } })
  t.ok(await storedTtl(client, key) > 95, 'touch() does')
  t.equal(await client.get(key), before, 'without rewriting the document')
})

test('touch() on a rolling or a new session costs nothing extra', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    routes: (app) => {
      app.get('/touch', async (req) => { req.session.touch(); return 'ok' })
    }
  })
  const res = await app.inject({ url: '/touch' })
  t.same(setCookies(res), [])
  const written = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  await app.inject({ url: '/touch', headers: { cookie: sessionCookie(written) } })
  t.ok(await client.ttl(sessionKey(prefix, written.json().id)) > 86000)
})

test('a persistent cookie (cookie.maxAge) is re-sent on every read and never outlives the session', async (t) => {
  const { app } = await buildApp(t, { session: { cookie: { maxAge: 3600 }, absoluteTtl: 600 } })
  const res = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const created = res.cookies[0] as { maxAge?: number }
  t.ok((created.maxAge ?? 0) <= 600, 'capped by the absolute deadline')
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
