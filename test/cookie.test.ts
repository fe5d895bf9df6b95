import { test, type Test } from 'tap'
import crypto from 'node:crypto'
import { Signer } from '@fastify/cookie'
import { SessionCookie, REMEMBERED_COOKIES, defaultIdGenerator } from '../lib/cookie.js'
import { defaults } from '../lib/options.js'
import { buildApp, sessionCookie, setCookies, keysUnder, SECRET, OLD_SECRET } from './helpers/app.js'

test('a cookie signed by an older secret still in the list is accepted and re-issued signed by the first', async (t) => {
  const old = await buildApp(t, { session: { secret: OLD_SECRET } })
  const res = await old.app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const rotated = await buildApp(t, { client: old.client, session: { secret: [SECRET, OLD_SECRET], prefix: old.prefix } })
  const read = await rotated.app.inject({ url: '/read', headers: { cookie: sessionCookie(res) } })
  t.same(read.json().data, { a: 1 })
  t.equal(read.json().id, res.json().id, 'same session')
  const renewed = sessionCookie(read)
  t.not(renewed, sessionCookie(res), 'a new signature')
  const onlyNew = await buildApp(t, { client: old.client, session: { secret: SECRET, prefix: old.prefix } })
  const withNew = await onlyNew.app.inject({ url: '/read', headers: { cookie: renewed } })
  t.same(withNew.json().data, { a: 1 }, 'the re-issued cookie verifies with the new secret alone')
  t.same(setCookies(withNew), [])
})

test('Secure follows the protocol with secure: auto, honouring trustProxy', async (t) => {
  const { app } = await buildApp(t, { fastify: { trustProxy: true } })
  const plain = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  t.notMatch(setCookies(plain)[0], /Secure/)
  const https = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 }, headers: { 'x-forwarded-proto': 'https' } })
  t.match(setCookies(https)[0], /; Secure/)
})

test('the default cookie is HttpOnly, SameSite=Lax, Path=/', async (t) => {
  const { app } = await buildApp(t)
  const res = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const [header] = setCookies(res)
  t.match(header, /; Path=\//)
  t.match(header, /; HttpOnly/)
  t.match(header, /; SameSite=Lax/)
})

test('cookie attributes are configurable', async (t) => {
  const { app } = await buildApp(t, {
    session: { cookieName: 'app.sid', cookie: { path: '/app', domain: 'example.com', sameSite: 'strict', secure: true, httpOnly: false, partitioned: true } },
    routes: (app) => {
      app.post('/app/write', async (req) => { req.session.set('a', 1); return 'ok' })
    }
  })
  const res = await app.inject({ method: 'POST', url: '/app/write' })
  const [header] = setCookies(res)
  t.match(header, /^app\.sid=/)
  t.match(header, /; Domain=example\.com/)
  t.match(header, /; Path=\/app/)
  t.match(header, /; SameSite=Strict/)
  t.match(header, /; Secure/)
  t.match(header, /; Partitioned/)
  t.notMatch(header, /HttpOnly/)
})

test('a custom idGenerator is used, and an id of the wrong format is refused before Redis', async (t) => {
  let n = 0
  const good = await buildApp(t, { session: { idGenerator: () => `custom-id-${String(++n).padStart(16, '0')}` } })
  const res = await good.app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  t.equal(res.json().id, 'custom-id-0000000000000001')
  t.equal(await good.client.exists(good.prefix + 'custom-id-0000000000000001'), 1)
  const bad = await buildApp(t, { session: { idGenerator: () => 'bad:id*with{chars}-long-enough' } })
  const refused = await bad.app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  t.equal(refused.statusCode, 500)
  t.equal(refused.json().code, 'FST_REDIS_SESSION_BAD_ID')
  t.same(await keysUnder(bad.client, bad.prefix), [])
  const notString = await buildApp(t, { session: { idGenerator: () => 42 as unknown as string } })
  const refusedToo = await notString.app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  t.equal(refusedToo.json().code, 'FST_REDIS_SESSION_BAD_ID')
})

/** Counts the HMACs computed from here on (@fastify/cookie's Signer looks createHmac up on each call). */
function countHmacs (t: Test): () => number {
  const original = crypto.createHmac
  let calls = 0
  crypto.createHmac = function countedHmac (...args: Parameters<typeof original>) {
    calls++
    return original.apply(crypto, args)
  }
  t.teardown(() => { crypto.createHmac = original })
  return () => calls
}

function sessionCookieCodec (secrets: string[]): SessionCookie {
  return new SessionCookie('sid', secrets, defaults.cookie, () => ({}))
}

test('a cookie that verified is remembered: the next request with it costs no HMAC', async (t) => {
  const cookie = sessionCookieCodec([SECRET, OLD_SECRET])
  const id = defaultIdGenerator()
  const current = new Signer(SECRET).sign(id)
  const older = new Signer(OLD_SECRET).sign(defaultIdGenerator())
  const hmacs = countHmacs(t)
  const first = cookie.verify(current)
  t.same(first, { id, renew: false })
  t.equal(hmacs(), 1)
  t.equal(cookie.verify(current), first, 'the same answer, from memory')
  t.equal(hmacs(), 1, 'no second HMAC')
  t.ok(Object.isFrozen(first), 'no request can change what the next one is told')
  t.equal(cookie.verify(older)?.renew, true, 'signed by the older secret: to be re-issued')
  t.equal(cookie.verify(older)?.renew, true, 'and still so when remembered')
  t.equal(hmacs(), 3, 'two HMACs for the older secret, once')
})

test('forged or malformed cookies are never remembered: each one is checked again', async (t) => {
  const cookie = sessionCookieCodec([SECRET])
  const id = defaultIdGenerator()
  const forged = new Signer('another secret, not this app\'s').sign(id)
  const malformed = new Signer(SECRET).sign('not an id!')
  const hmacs = countHmacs(t)
  for (let i = 0; i < 3; i++) {
    t.equal(cookie.verify(forged), null)
    t.equal(cookie.verify(malformed), null)
  }
  t.equal(hmacs(), 6, 'an HMAC every time')
  t.equal(cookie.verify('x'.repeat(200)), null, 'oversized: refused before any lookup or HMAC')
  t.equal(hmacs(), 6)
})

test(`at most ${REMEMBERED_COOKIES} cookies are remembered; the oldest goes first`, async (t) => {
  const cookie = sessionCookieCodec([SECRET])
  const signer = new Signer(SECRET)
  const values = Array.from({ length: REMEMBERED_COOKIES + 1 }, () => signer.sign(defaultIdGenerator()))
  const hmacs = countHmacs(t)
  for (const value of values) cookie.verify(value)
  t.equal(hmacs(), values.length)
  t.ok(cookie.verify(values[values.length - 1]), 'the newest is remembered')
  t.ok(cookie.verify(values[1]), 'so is the second oldest')
  t.equal(hmacs(), values.length, 'both without an HMAC')
  t.ok(cookie.verify(values[0]), 'the oldest still verifies')
  t.equal(hmacs(), values.length + 1, 'but it had been forgotten')
})
