import { test } from 'tap'
import type { Test } from 'tap'
import { Type } from '@sinclair/typebox'
import { buildApp, keysUnder, setCookies, sessionKey, hashedId } from './helpers/app.js'

/** The code of the error a promise rejects with, or 'resolved'. */
async function codeOf (t: Test, promise: Promise<unknown>): Promise<string | undefined> {
  return promise.then(() => 'resolved', (err: Error & { code?: string }) => {
    t.type(err, Error)
    return err.code
  })
}

test('app.sessions.create stores a session with the data and gives a signed cookie that opens it', async (t) => {
  const { app, client, prefix } = await buildApp(t)
  const created = await app.sessions.create({ user: { id: 1 }, cart: [2] })
  t.match(created.id, /^[A-Za-z0-9_-]{43}$/)
  t.match(created.cookie, /^sid=[A-Za-z0-9_-]{43}\.[A-Za-z0-9%_-]+$/, 'name=value, encoded for a Cookie header')
  t.same(Object.keys(created.headers), ['cookie'])
  t.equal(created.headers.cookie, created.cookie)
  t.equal(app.sessions.stats().created, 1)
  const pttl = await client.pttl(sessionKey(prefix, created.id))
  t.ok(pttl > 86_390_000 && pttl <= 86_400_000, 'stored with the configured ttl')

  const read = await app.inject({ url: '/read', headers: created.headers })
  t.same(read.json(), { id: created.id, isNew: false, data: { user: { id: 1 }, cart: [2] } })
  t.same(setCookies(read), [], 'a current cookie: nothing to re-issue')
  const write = await app.inject({ method: 'POST', url: '/increment', headers: { cookie: created.cookie } })
  t.same(write.json(), { n: 1 })
  t.same(await app.sessions.get(created.id), { user: { id: 1 }, cart: [2], n: 1 })
})

test('app.sessions.create with no data stores an empty session; undefined values are left out', async (t) => {
  const { app } = await buildApp(t)
  const empty = await app.sessions.create()
  t.same(await app.sessions.get(empty.id), {})
  const some = await app.sessions.create({ a: 1, b: undefined })
  t.same(await app.sessions.get(some.id), { a: 1 })
})

test('app.sessions.create: ttl and rememberMe, as setTtl and rememberMe() set them', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    routes: (app) => app.get('/persistent', async (req) => ({ persistent: req.session.isPersistent }))
  })
  const created = await app.sessions.create({ user: 'alice' }, { ttl: 600, rememberMe: true })
  t.match(await client.get(sessionKey(prefix, created.id)), /^\{"v":1,"a":\d+,"t":600,"c":\d+,"p":1,"d":\{"user":"alice"\}\}$/)
  const pttl = await client.pttl(sessionKey(prefix, created.id))
  t.ok(pttl > 590_000 && pttl <= 600_000, 'its own ttl')
  const read = await app.inject({ url: '/persistent', headers: created.headers })
  t.same(read.json(), { persistent: true })
  const maxAge = read.cookies[0].maxAge as number
  t.ok(maxAge <= 600 && maxAge >= 598, 'the rolling read sends the persistent cookie')

  const plain = await app.sessions.create({}, { rememberMe: false })
  t.match(await client.get(sessionKey(prefix, plain.id)), /"t":0,"c":\d+,"d":/)
})

test('app.sessions.create follows idFrom and cookieName', async (t) => {
  const { app: byHeader } = await buildApp(t, { session: { idFrom: 'header', header: 'X-Auth' } })
  const h = await byHeader.sessions.create({ user: 'alice' })
  t.same(Object.keys(h.headers), ['x-auth'], 'the header alone')
  t.same((await byHeader.inject({ url: '/read', headers: h.headers })).json().data, { user: 'alice' })
  t.equal((await byHeader.inject({ url: '/read', headers: { cookie: h.cookie } })).json().isNew, true, 'the cookie is not read')

  const { app: byBoth } = await buildApp(t, { session: { idFrom: 'both', cookieName: 'app.sid' } })
  const b = await byBoth.sessions.create({ user: 'bob' })
  t.same(Object.keys(b.headers).sort(), ['cookie', 'x-session-id'])
  t.match(b.cookie, /^app\.sid=/)
  t.same((await byBoth.inject({ url: '/read', headers: { cookie: b.cookie } })).json().data, { user: 'bob' })
  t.same((await byBoth.inject({ url: '/read', headers: { 'x-session-id': b.headers['x-session-id'] } })).json().data, { user: 'bob' })
})

test('app.sessions.create: the id is random, not idGenerator\'s (there is no request)', async (t) => {
  let calls = 0
  const { app } = await buildApp(t, { session: { idGenerator: () => { calls++; return 'a'.repeat(22) + String(calls) } } })
  const created = await app.sessions.create({ a: 1 })
  t.match(created.id, /^[A-Za-z0-9_-]{43}$/)
  t.equal(calls, 0)
})

test('app.sessions.create checks what it writes as a request\'s save does, and stores nothing it refuses', async (t) => {
  const schema = Type.Object({ user: Type.Object({ id: Type.Integer() }) }, { additionalProperties: false })
  const { app, client, prefix } = await buildApp(t, { session: { schema, maxBytes: 256 } })
  t.equal(await codeOf(t, app.sessions.create({ user: { id: 'x' } })), 'FST_REDIS_SESSION_SCHEMA_MISMATCH')
  t.equal(await codeOf(t, app.sessions.create({ other: 1 })), 'FST_REDIS_SESSION_SCHEMA_MISMATCH', 'a key the schema does not allow')
  t.equal(await codeOf(t, app.sessions.create({ user: { id: 1 } }, { ttl: 0 })), 'FST_REDIS_SESSION_INVALID_VALUE', 'ttl 0')
  t.equal(await codeOf(t, app.sessions.create({ user: { id: 1 } }, { ttl: 1.5 })), 'FST_REDIS_SESSION_INVALID_VALUE', 'a fractional ttl')
  t.equal(await codeOf(t, app.sessions.create({ user: { id: 1 } }, { rememberMe: 'yes' as unknown as boolean })), 'FST_REDIS_SESSION_INVALID_VALUE', 'rememberMe not a boolean')
  t.same(await keysUnder(client, prefix), [], 'nothing stored')

  const { app: plain, client: plainClient, prefix: plainPrefix } = await buildApp(t, { session: { maxBytes: 256 } })
  t.equal(await codeOf(t, plain.sessions.create({ big: 'x'.repeat(300) })), 'FST_REDIS_SESSION_TOO_LARGE')
  t.equal(await codeOf(t, plain.sessions.create({ n: 10n })), 'FST_REDIS_SESSION_INVALID_VALUE', 'a BigInt')
  t.equal(await codeOf(t, plain.sessions.create(JSON.parse('{"__proto__":1}'))), 'FST_REDIS_SESSION_INVALID_KEY')
  for (const data of [null, [1], 'user', 42]) {
    t.equal(await codeOf(t, plain.sessions.create(data as unknown as Record<string, unknown>)), 'FST_REDIS_SESSION_INVALID_VALUE', `data ${JSON.stringify(data)}`)
  }
  t.same(await keysUnder(plainClient, plainPrefix), [], 'nothing stored')
  t.equal(plain.sessions.stats().created, 0)
})

test('app.sessions.create with userKey: the session joins its user\'s index; trackClient has no client to keep', async (t) => {
  const { app } = await buildApp(t, { session: { userKey: 'userId', trackClient: true } })
  const first = await app.sessions.create({ userId: 7 })
  const second = await app.sessions.create({ userId: 7 })
  await app.sessions.create({ userId: 8 })
  const sessions = await app.sessions.list(7)
  t.same(sessions.map(s => s.idHint).sort(), [hashedId(first.id).slice(0, 8), hashedId(second.id).slice(0, 8)].sort())
  t.notOk(sessions.some(s => 'ip' in s || 'userAgent' in s), 'no request, no ip or user agent')
  t.equal(await app.sessions.destroyAll(7, { except: first.id }), 1)
  t.equal((await app.inject({ url: '/read', headers: second.headers })).json().isNew, true, 'logged out')
  t.equal((await app.inject({ url: '/read', headers: first.headers })).json().isNew, false)
})
