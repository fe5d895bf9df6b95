import { test } from 'tap'
import { Redis } from 'ioredis'
import { buildApp, connect, sessionCookie, uniquePrefix, SECRET, sessionKey, hashedId } from './helpers/app.js'
import { accountApp, Browser } from './helpers/scale.js'
import { startRedis } from './helpers/redis-server.js'
import { Gate } from './helpers/gate.js'

test('app.sessions.get returns the data of a live session, without extending it', async (t) => {
  const { app, client, prefix } = await buildApp(t)
  const res = await app.inject({ method: 'POST', url: '/write', payload: { cart: [1, 2] } })
  const id = res.json().id
  await client.expire(sessionKey(prefix, id), 100)
  t.same(await app.sessions.get(id), { cart: [1, 2] })
  const pttl = await client.pttl(sessionKey(prefix, id))
  t.ok(pttl > 98_000 && pttl <= 100_000, `TTL untouched (PTTL ${pttl} ms)`)
  t.equal(await app.sessions.get('x'.repeat(43)), null, 'unknown id')
  t.equal(await app.sessions.get('not an id'), null, 'malformed id: no Redis call')
  const garbage = 'G'.repeat(43)
  await client.set(sessionKey(prefix, garbage), 'not json')
  t.equal(await app.sessions.get(garbage), null, 'corrupt document')
  const reordered = 'R'.repeat(43)
  await client.set(sessionKey(prefix, reordered), '{"a":1,"v":1,"t":0,"c":0,"d":{"x":1}}')
  t.equal(await app.sessions.get(reordered), null, 'past its absolute deadline')
  const badMeta = 'B'.repeat(43)
  await client.set(sessionKey(prefix, badMeta), `{"v":1,"a":${Date.now() + 60_000},"t":0,"c":0,"u":5,"d":{}}`)
  t.equal(await app.sessions.get(badMeta), null, 'index metadata of the wrong type')
})

test('app.sessions.destroy deletes one session; its cookie then gets a fresh one', async (t) => {
  const client = await connect(t)
  const prefix = uniquePrefix()
  const app = await accountApp(t, client, { prefix, userKey: 'userId' })
  const browser = new Browser()
  const id = (await browser.send(app, 'POST', '/login', { userId: 3 })).json().id
  t.equal(await app.sessions.destroy(id), true)
  t.equal(app.sessions.stats().destroyed, 1)
  t.equal(await client.exists(sessionKey(prefix, id)), 0)
  t.equal(await client.zscore(`${prefix}user:3`, hashedId(id)), null, 'and its index entry')
  t.equal(await app.sessions.destroy(id), false, 'already gone')
  t.equal(await app.sessions.destroy('bad id'), false)
  t.equal(app.sessions.stats().destroyed, 1)
  const me = (await browser.send(app, 'GET', '/me')).json()
  t.same(me.data, {})
  t.equal(me.isNew, true)
})

test('app.sessions.destroy of a session stored without a user or unreadable', async (t) => {
  const { app, client, prefix } = await buildApp(t, { session: { userKey: 'userId' } })
  const id = (await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })).json().id
  t.equal(await app.sessions.destroy(id), true)
  const garbage = 'G'.repeat(43)
  await client.set(sessionKey(prefix, garbage), 'not json')
  t.equal(await app.sessions.destroy(garbage), true)
  t.equal(await client.exists(sessionKey(prefix, garbage)), 0)
})

test('app.sessions.count counts the sessions under the prefix only (SCAN)', async (t) => {
  const client = await connect(t)
  // glob characters in the prefix match themselves only
  const prefix = `${uniquePrefix()}[a]*:`
  const app = await accountApp(t, client, { prefix, userKey: 'userId' })
  const neighbour = await accountApp(t, client, { prefix: prefix.replace('[a]*', 'a-'), userKey: 'userId' })
  t.equal(await app.sessions.count(), 0)
  for (let i = 0; i < 5; i++) await new Browser().send(app, 'POST', '/login', { userId: i % 2 })
  await new Browser().send(neighbour, 'POST', '/login', { userId: 1 })
  await client.set(`${prefix}not-a-session`, 'x')
  t.equal(await app.sessions.count(), 5, 'user indexes and other keys left out')
  t.equal(await neighbour.sessions.count(), 1)
})

test('app.sessions.stats counts each event and returns a copy', async (t) => {
  const gate = new Gate()
  const { app, client, prefix } = await buildApp(t, {
    routes: (app) => {
      app.post('/destroy', async (req) => { await req.session.destroy(); return 'ok' })
      // holds the request between its load and its save
      app.post('/slow-increment', async (req) => {
        req.session.increment('n')
        await gate.hold()
        return 'ok'
      })
    }
  })
  const zero = { loaded: 0, created: 0, saved: 0, destroyed: 0, conflicts: 0, rejectedCookies: 0, storeErrors: 0, rotated: 0, cacheHits: 0, cacheMisses: 0, cacheInvalidations: 0, cacheLeaseExpiries: 0 }
  t.same(app.sessions.stats(), zero)
  const first = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const cookie = sessionCookie(first)
  t.same(app.sessions.stats(), { ...zero, created: 1, saved: 1 })
  await app.inject({ url: '/read', headers: { cookie } })
  t.same(app.sessions.stats(), { ...zero, created: 1, saved: 1, loaded: 1 })
  await app.inject({ method: 'POST', url: '/write', headers: { cookie }, payload: { b: 2 } })
  t.same(app.sessions.stats(), { ...zero, created: 1, saved: 2, loaded: 2 })
  await app.inject({ url: '/read', headers: { cookie: cookie + 'x' } })
  t.equal(app.sessions.stats().rejectedCookies, 1, 'a forged cookie')
  await app.inject({ method: 'POST', url: '/destroy', headers: { cookie } })
  t.equal(app.sessions.stats().destroyed, 1)

  const copy = app.sessions.stats()
  copy.loaded = 1000
  t.equal(app.sessions.stats().loaded, 3, 'a copy')

  // conflicts: another instance saves between this request's load and its save
  const other = await buildApp(t, { client, session: { prefix } })
  const started = await app.inject({ method: 'POST', url: '/write', payload: { n: 0 } })
  const shared = sessionCookie(started)
  const slow = app.inject({ method: 'POST', url: '/slow-increment', headers: { cookie: shared } })
  await gate.reached(1)
  await other.app.inject({ method: 'POST', url: '/increment', headers: { cookie: shared } })
  gate.open()
  t.equal((await slow).statusCode, 200)
  t.equal(app.sessions.stats().conflicts, 1)
  t.same((await app.inject({ url: '/read', headers: { cookie: shared } })).json().data, { n: 2 }, 'no update lost')
})

test('app.sessions.stats counts store errors', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.stop())
  const client = new Redis(server.url, { maxRetriesPerRequest: 1 })
  t.teardown(() => { client.disconnect() })
  const { app } = await buildApp(t, { client, session: { timeout: 100 } })
  const first = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  server.pause()
  t.teardown(() => server.resume())
  const res = await app.inject({ url: '/read', headers: { cookie: sessionCookie(first) } })
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'FST_REDIS_SESSION_STORE_UNAVAILABLE')
  t.equal(app.sessions.stats().storeErrors, 1)
  await t.rejects(app.sessions.count(), { code: 'FST_REDIS_SESSION_STORE_UNAVAILABLE' })
  t.equal(app.sessions.stats().storeErrors, 2)
})

test('each plugin instance has its own app.sessions', async (t) => {
  const client = await connect(t)
  const a = await accountApp(t, client, { prefix: uniquePrefix(), secret: SECRET })
  const b = await accountApp(t, client, { prefix: uniquePrefix() })
  await new Browser().send(a, 'POST', '/login', { userId: 1 })
  t.equal(await a.sessions.count(), 1)
  t.equal(await b.sessions.count(), 0)
})
