import { test, type Test } from 'tap'
import crypto, { randomBytes } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Signer, sign, unsign } from '@fastify/cookie'
import type { LightMyRequestResponse } from 'fastify'
import { OLD_SECRET, SECRET, buildApp, keysUnder, sessionCookie, setCookies, sharedRedisUrl, sessionKey } from './helpers/app.js'
import { monitorRedis } from './helpers/monitor.js'
import { SessionCookie, REMEMBERED_COOKIES, REMEMBERED_HEADER_LENGTH, type SessionCookieOptions } from '../lib/cookie/signed-cookie.js'
import { defaultIdGenerator, storedIdOf } from '../lib/model/ids.js'
import { defaults } from '../lib/model/settings.js'

/** The id a response's session cookie carries, checked against SECRET alone. */
function cookieId (res: LightMyRequestResponse): string {
  const value = decodeURIComponent(sessionCookie(res).slice('sid='.length))
  const { valid, value: id } = unsign(value, SECRET)
  if (!valid || id === null) throw new Error('the session cookie is not signed by SECRET')
  return id
}

/** An app holding one stored session with `{ user: 'alice' }`, watched by MONITOR. */
async function withStoredSession (t: Test, secret: string | string[] = SECRET) {
  const built = await buildApp(t, { session: { secret } })
  const monitor = await monitorRedis(t, await sharedRedisUrl())
  const created = await built.app.inject({ method: 'POST', url: '/write', payload: { user: 'alice' } })
  const id = cookieId(created)
  const stored = await built.client.get(sessionKey(built.prefix, id))
  return { ...built, monitor, id, stored }
}

test('a cookie that fails verification gets a fresh session, no Set-Cookie and no Redis command', async (t) => {
  const { app, client, prefix, monitor, id, stored } = await withStoredSession(t)
  const good = sign(id, SECRET)
  const flipped = good.slice(0, -1) + (good.endsWith('A') ? 'B' : 'A')
  const forgedIds = {
    'an id with *': `${'a'.repeat(24)}*`,
    'an id with :': `${'a'.repeat(24)}:x`,
    'an id with {': `{${'a'.repeat(24)}}`,
    'an id with a newline': `${'a'.repeat(24)}\nFLUSHALL`,
    'an id with a space': `${'a'.repeat(24)} x`,
    'a non-ASCII id': 'é'.repeat(24),
    'an id with control characters': `${'a'.repeat(24)}\u0000\u0001\u007f`,
    'a 21-character id': 'a'.repeat(21),
    'a 129-character id': 'a'.repeat(129)
  }
  const cases: Record<string, string> = {
    'a bad signature': `sid=${encodeURIComponent(flipped)}`,
    'the signature of another id': `sid=${encodeURIComponent(id + '.' + sign(randomBytes(32).toString('base64url'), SECRET).split('.')[1])}`,
    'no signature': `sid=${id}`,
    'a signature made by a retired secret': `sid=${encodeURIComponent(sign(id, OLD_SECRET))}`,
    'an empty value': 'sid=',
    'an 8 KB value': `sid=${'a'.repeat(8192)}`,
    'an 8 KB value correctly signed': `sid=${encodeURIComponent(sign('a'.repeat(8192), SECRET))}`,
    'raw non-ASCII characters': `sid=${Buffer.from('ééé.ààà', 'utf8').toString('latin1')}`,
    'broken percent-encoding': 'sid=%E0%A4%A.%ZZ',
    'only a dot': 'sid=.'
  }
  for (const [name, forged] of Object.entries(forgedIds)) {
    cases[`${name}, correctly signed`] = `sid=${encodeURIComponent(sign(forged, SECRET))}`
  }

  await monitor.take()
  for (const [name, cookie] of Object.entries(cases)) {
    const res = await app.inject({ url: '/read', headers: { cookie } })
    t.equal(res.statusCode, 200, `${name}: served`)
    t.equal(res.json().isNew, true, `${name}: a fresh session`)
    t.not(res.json().id, id, `${name}: not the stored session`)
    t.same(res.json().data, {}, `${name}: no data`)
    t.same(setCookies(res), [], `${name}: no Set-Cookie: the plugin clears only cookies it ended`)
    t.same(await monitor.takeFrom(client), [], `${name}: no command reached Redis`)
  }
  t.equal(await client.get(sessionKey(prefix, id)), stored, 'the real session is untouched')
  t.same(await keysUnder(client, prefix), [sessionKey(prefix, id)], 'nothing else was stored')
})

test('a cookie with a valid signature and a well-formed id costs one round trip', async (t) => {
  const { app, client, monitor, id } = await withStoredSession(t)
  await monitor.take()
  const res = await app.inject({ url: '/read', headers: { cookie: `sid=${encodeURIComponent(sign(id, SECRET))}` } })
  t.same(res.json().data, { user: 'alice' })
  t.equal((await monitor.takeFrom(client)).length, 1, 'the load script, nothing else')
})

test('an unknown well-formed id is never adopted, not even after writing', async (t) => {
  const { app, client, prefix } = await buildApp(t)
  const monitor = await monitorRedis(t, await sharedRedisUrl())
  const chosen = randomBytes(32).toString('base64url')
  const cookie = `sid=${encodeURIComponent(sign(chosen, SECRET))}`
  await monitor.take()

  const read = await app.inject({ url: '/read', headers: { cookie } })
  t.equal(read.json().isNew, true)
  t.not(read.json().id, chosen, 'reading does not take the chosen id')
  t.same(setCookies(read), [], 'no cookie until a session is stored')

  const written = await app.inject({ method: 'POST', url: '/write', headers: { cookie }, payload: { user: 'mallory' } })
  t.equal(written.statusCode, 200)
  const issued = cookieId(written)
  t.not(issued, chosen, 'a new id is issued')
  t.equal(written.json().id, issued)

  // the new cookie works; the chosen id still names nothing
  const again = await app.inject({ method: 'POST', url: '/write', headers: { cookie: sessionCookie(written) }, payload: { more: 1 } })
  t.equal(again.statusCode, 200)
  t.equal(await client.exists(sessionKey(prefix, chosen)), 0, 'no key with the chosen id')
  t.same(await keysUnder(client, prefix), [sessionKey(prefix, issued)])
  const writes = (await monitor.take()).filter(c => ['set', 'evalsha', 'eval', 'pexpire', 'pexpireat'].includes(c.name))
  t.ok(writes.length > 0)
  t.ok(writes.every(c => !c.args.includes(sessionKey(prefix, chosen)) && !c.args.includes(prefix + chosen)), 'Redis never wrote or extended the chosen key')
})

test('rotating secrets: a cookie from before the rotation is accepted and re-signed by the first secret; a retired one is not', async (t) => {
  // the app before the rotation, with the old secret alone
  const before = await buildApp(t, { session: { secret: OLD_SECRET } })
  const created = await before.app.inject({ method: 'POST', url: '/write', payload: { user: 'alice' } })
  const id = created.json().id
  const byOld = sessionCookie(created)
  const same = { client: before.client, session: { prefix: before.prefix } }

  const { app } = await buildApp(t, { ...same, session: { ...same.session, secret: [SECRET, OLD_SECRET] } })
  const res = await app.inject({ url: '/read', headers: { cookie: byOld } })
  t.same(res.json().data, { user: 'alice' }, 'accepted')
  t.equal(res.json().id, id, 'the same session')
  const renewed = sessionCookie(res)
  t.not(renewed, byOld, 'a new signature')
  t.equal(cookieId(res), id, 're-issued, verifiable by the first secret alone')
  const next = await app.inject({ url: '/read', headers: { cookie: renewed } })
  t.same(next.json().data, { user: 'alice' })
  t.same(setCookies(next), [], 'a current cookie is not re-issued')

  const { app: retiredApp } = await buildApp(t, { ...same, session: { ...same.session, secret: SECRET } })
  const withNew = await retiredApp.inject({ url: '/read', headers: { cookie: renewed } })
  t.same(withNew.json().data, { user: 'alice' }, 'the re-issued cookie verifies with the new secret alone')
  t.same(setCookies(withNew), [])
  const refused = await retiredApp.inject({ url: '/read', headers: { cookie: byOld } })
  t.equal(refused.json().isNew, true, 'once retired, the old secret opens nothing')
  t.not(refused.json().id, id)
  t.same(setCookies(refused), [])
})

test('several session cookies in one header: the first is used, as browsers send the most specific first', async (t) => {
  const { app, client, monitor, id } = await withStoredSession(t)
  const other = await app.inject({ method: 'POST', url: '/write', payload: { user: 'bob' } })
  const alice = `sid=${encodeURIComponent(sign(id, SECRET))}`
  const bob = sessionCookie(other)

  const first = await app.inject({ url: '/read', headers: { cookie: `${alice}; ${bob}` } })
  t.same(first.json().data, { user: 'alice' })
  const second = await app.inject({ url: '/read', headers: { cookie: `${bob}; other=1; ${alice}` } })
  t.same(second.json().data, { user: 'bob' })

  // a forged cookie in front of a good one is refused outright, never merged with it
  await monitor.take()
  const forged = await app.inject({ url: '/read', headers: { cookie: `sid=${id}; ${alice}` } })
  t.equal(forged.json().isNew, true)
  t.not(forged.json().id, id)
  t.same(await monitor.takeFrom(client), [], 'no command reached Redis')
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

function sessionCookieCodec (secrets: string[], storedId: (id: string) => string = storedIdOf(true), options: Partial<SessionCookieOptions> = {}): SessionCookie {
  return new SessionCookie({ name: 'sid', secrets, settings: defaults.cookie, parse: () => ({}), serialize: () => '', storedIdOf: storedId, ...options })
}

test('a cookie that verified is remembered: the next request with it costs no HMAC, nor a hash of its id', async (t) => {
  let hashes = 0
  const cookie = sessionCookieCodec([SECRET, OLD_SECRET], (id) => {
    hashes++
    return storedIdOf(true)(id)
  })
  const id = defaultIdGenerator()
  const current = new Signer(SECRET).sign(id)
  const older = new Signer(OLD_SECRET).sign(defaultIdGenerator())
  const hmacs = countHmacs(t)
  const first = cookie.verify(current)
  t.same(first, { id, renew: false, storedId: sessionKey('', id) })
  t.equal(hmacs(), 1)
  t.equal(cookie.verify(current), first, 'the same answer, from memory')
  t.equal(hmacs(), 1, 'no second HMAC')
  t.equal(hashes, 1, 'the stored id is remembered with it: one hash per cookie value')
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

test('a whole Cookie header that verified is remembered: the same text again is neither parsed nor verified', async (t) => {
  let parses = 0
  const parse = (header: string) => {
    parses++
    return Object.fromEntries(header.split('; ').map(pair => pair.split('=')).map(([name, value]) => [name, decodeURIComponent(value)]))
  }
  const cookie = sessionCookieCodec([SECRET], storedIdOf(true), { parse })
  const signed = new Signer(SECRET).sign(defaultIdGenerator())
  const headers = { cookie: `sid=${encodeURIComponent(signed)}` }
  t.equal(cookie.remembered(headers), undefined, 'nothing before it verified')
  const verified = cookie.verify(cookie.raw(headers) as string)
  if (verified === null) throw new Error('did not verify')
  t.equal(parses, 1)
  cookie.remember(headers, verified)
  const hmacs = countHmacs(t)
  t.equal(cookie.remembered({ cookie: (' ' + headers.cookie).slice(1) }), verified, 'the same text, in another string and headers object')
  t.equal(parses, 1, 'not parsed again')
  t.equal(hmacs(), 0, 'no HMAC')
  t.equal(cookie.remembered({ cookie: `${headers.cookie}; theme=dark` }), undefined, 'another text, even with the same session cookie')
  t.equal(cookie.remembered({}), undefined, 'no Cookie header')

  const long = { cookie: `${headers.cookie}; pad=${'x'.repeat(REMEMBERED_HEADER_LENGTH)}` }
  cookie.remember(long, verified)
  t.equal(cookie.remembered(long), undefined, `a header longer than ${REMEMBERED_HEADER_LENGTH} characters is not kept`)

  const both = sessionCookieCodec([SECRET], storedIdOf(true), { parse, transport: { idFrom: 'both', header: 'X-Session-Id' } })
  both.remember(headers, verified)
  t.equal(both.remembered(headers), undefined, 'not while a header may carry the id instead')
})

test('request after request over one connection, each is answered for the cookie it sends: the same, another, forged, none, or on a route that opted out', async (t) => {
  const { app } = await buildApp(t, {
    routes: (app) => {
      app.get('/port', async (req) => ({ port: req.raw.socket.remotePort, isNew: req.session.isNew, data: req.session.toJSON() }))
      app.get('/off', { config: { session: false } }, async (req) => ({ port: req.raw.socket.remotePort, loaded: (() => { try { return req.session.isNew } catch { return 'none' } })() }))
    }
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => { agent.destroy() })
  const send = (method: string, path: string, cookie?: string, body?: unknown) => new Promise<{ json: Record<string, unknown>, setCookie: string[] }>((resolve, reject) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' }
    if (cookie !== undefined) headers.cookie = cookie
    const req = http.request({ host: '127.0.0.1', port, method, path, agent, headers }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => { resolve({ json: JSON.parse(text), setCookie: res.headers['set-cookie'] ?? [] }) })
    })
    req.on('error', reject)
    req.end(body === undefined ? undefined : JSON.stringify(body))
  })
  const pair = (res: { setCookie: string[] }) => res.setCookie[0].split(';', 1)[0]
  const alice = pair(await send('POST', '/write', undefined, { user: 'alice' }))
  const bob = pair(await send('POST', '/write', undefined, { user: 'bob' }))
  const rejected = app.sessions.stats().rejectedCookies

  const first = await send('GET', '/port', alice)
  t.same(first.json.data, { user: 'alice' })
  const again = await send('GET', '/port', alice)
  t.equal(again.json.port, first.json.port, 'the same connection')
  t.same(again.json.data, { user: 'alice' }, 'the same cookie, the same session')
  t.same((await send('GET', '/port', bob)).json.data, { user: 'bob' }, 'another cookie on it: that cookie\'s session')
  const forged = alice.slice(0, -1) + (alice.endsWith('A') ? 'B' : 'A')
  const refused = await send('GET', '/port', forged)
  t.equal(refused.json.isNew, true, 'a forged cookie after a good one is refused')
  t.equal(app.sessions.stats().rejectedCookies, rejected + 1, 'and counted')
  t.same((await send('GET', '/port', alice)).json.data, { user: 'alice' }, 'the good one again')
  const off = await send('GET', '/off', alice)
  t.same(off.json, { port: first.json.port, loaded: 'none' }, 'a route that opted out loads nothing, though the header is remembered')
  const none = await send('GET', '/port')
  t.equal(none.json.port, first.json.port)
  t.equal(none.json.isNew, true, 'no cookie: a fresh session')
  t.equal(app.sessions.stats().rejectedCookies, rejected + 1)
})
