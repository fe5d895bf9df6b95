import { test } from 'tap'
import Fastify from 'fastify'
import redisSession from '../lib/index.js'
import { SECRET, buildApp, connect, keysUnder, sessionCookie, setCookies, sessionKey } from './helpers/app.js'
import { logoutRoute } from './helpers/routes.js'

/** The attributes of one Set-Cookie header, lower-cased names, in order. */
function attributes (header: string): string[] {
  return header.split('; ').slice(1).map(a => a.replace(/^([^=]+)/, name => name.toLowerCase()))
}

/** The attributes of a clearing cookie, without the two that make it expire. */
function clearing (header: string): string[] {
  const all = attributes(header)
  if (!all.includes('max-age=0') || !all.includes('expires=Thu, 01 Jan 1970 00:00:00 GMT')) throw new Error(`not a clearing cookie: ${header}`)
  return all.filter(a => a !== 'max-age=0' && !a.startsWith('expires='))
}

const logout = { routes: logoutRoute }

test('defaults: HttpOnly, SameSite=Lax, Path=/, host-only, a browser-session cookie, not Secure over plain HTTP', async (t) => {
  const { app } = await buildApp(t)
  const res = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const [header] = setCookies(res)
  t.match(header, /^sid=[A-Za-z0-9_-]{43}\.[^;]+; /)
  t.same(attributes(header), ['path=/', 'httponly', 'samesite=Lax'])
})

test('secure: auto marks the cookie Secure when the request came over HTTPS, as the proxy reports it', async (t) => {
  const { app } = await buildApp(t, { fastify: { trustProxy: true } })
  const plain = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  t.same(attributes(setCookies(plain)[0]), ['path=/', 'httponly', 'samesite=Lax'], 'plain HTTP, no proxy header')
  const https = await app.inject({ method: 'POST', url: '/write', headers: { 'x-forwarded-proto': 'https' }, payload: { a: 1 } })
  t.same(attributes(setCookies(https)[0]), ['path=/', 'httponly', 'secure', 'samesite=Lax'])
  const http = await app.inject({ method: 'POST', url: '/write', headers: { 'x-forwarded-proto': 'http' }, payload: { a: 1 } })
  t.same(attributes(setCookies(http)[0]), ['path=/', 'httponly', 'samesite=Lax'])

  // an untrusted client cannot claim HTTPS: the header counts only behind a trusted proxy
  const { app: direct } = await buildApp(t)
  const claimed = await direct.inject({ method: 'POST', url: '/write', headers: { 'x-forwarded-proto': 'https' }, payload: { a: 1 } })
  t.notOk(claimed.cookies[0].secure)
})

test('secure: true marks the cookie Secure even on plain HTTP', async (t) => {
  const { app } = await buildApp(t, { session: { cookie: { secure: true, sameSite: 'strict' } } })
  const res = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  t.same(attributes(setCookies(res)[0]), ['path=/', 'httponly', 'secure', 'samesite=Strict'])
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

test('a __Host- cookie carries exactly what browsers require, works, and is cleared with the same attributes', async (t) => {
  const { app } = await buildApp(t, { session: { cookieName: '__Host-sid', cookie: { secure: true } }, ...logout })
  const created = await app.inject({ method: 'POST', url: '/write', payload: { user: 'alice' } })
  const [header] = setCookies(created)
  t.match(header, /^__Host-sid=/)
  t.same(attributes(header), ['path=/', 'httponly', 'secure', 'samesite=Lax'], 'Secure, Path=/ and no Domain')
  const cookie = sessionCookie(created, '__Host-sid')
  const read = await app.inject({ url: '/read', headers: { cookie } })
  t.same(read.json().data, { user: 'alice' })
  const out = await app.inject({ method: 'POST', url: '/logout', headers: { cookie } })
  const [cleared] = setCookies(out)
  t.match(cleared, /^__Host-sid=; /)
  t.same(clearing(cleared), ['path=/', 'httponly', 'secure', 'samesite=Lax'],
    'a clearing cookie without Secure would itself be dropped')
})

test('a __Secure- cookie may carry a Domain', async (t) => {
  const { app } = await buildApp(t, { session: { cookieName: '__Secure-sid', cookie: { secure: true, domain: 'example.com' } } })
  const res = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  t.same(attributes(setCookies(res)[0]), ['domain=example.com', 'path=/', 'httponly', 'secure', 'samesite=Lax'])
})

test('registration refuses prefixed names with options browsers would reject, whatever the case of the prefix', async (t) => {
  const client = await connect(t)
  const refused: Array<[string, Record<string, unknown>]> = [
    ['__Host-sid', { secure: false }],
    ['__host-sid', {}],
    ['__HOST-sid', { secure: true, path: '/app' }],
    ['__host-sid', { secure: true, domain: 'example.com' }],
    ['__Secure-sid', { secure: false }],
    ['__secure-sid', {}],
    ['__SECURE-sid', { secure: 'auto' }]
  ]
  for (const [cookieName, cookie] of refused) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(redisSession, { client, secret: SECRET, cookieName, cookie }).ready() },
      { code: 'FST_REDIS_SESSION_INVALID_OPTION' }, `${cookieName} with ${JSON.stringify(cookie)}`)
  }
  const { app: accepted } = await buildApp(t, { client, session: { cookieName: '__host-sid', cookie: { secure: true } } })
  const res = await accepted.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const [header] = setCookies(res)
  t.match(header, /^__host-sid=/, '__host-sid with secure: true is accepted')
  t.same(attributes(header), ['path=/', 'httponly', 'secure', 'samesite=Lax'])
})

test('destroy() clears the cookie under the same name, path and domain', async (t) => {
  const cookieOptions = [
    { cookieName: 'app_session', cookie: { domain: 'example.com' } },
    { cookieName: 'sid', cookie: { path: '/app', sameSite: 'strict' as const } }
  ]
  for (const session of cookieOptions) {
    const { app } = await buildApp(t, { session, ...logout })
    const created = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
    const set = setCookies(created)[0]
    const cookie = sessionCookie(created, session.cookieName)
    const out = await app.inject({ method: 'POST', url: '/logout', headers: { cookie } })
    t.equal(out.statusCode, 200)
    const [cleared] = setCookies(out)
    t.ok(cleared.startsWith(`${session.cookieName}=; `), 'same name, empty value')
    t.same(clearing(cleared), attributes(set), 'same path, domain and flags')
    const after = await app.inject({ url: '/read', headers: { cookie } })
    t.equal(after.json().isNew, true, 'the old cookie opens nothing')
  }
})

test('a custom idGenerator is used, and an id of the wrong format is refused before Redis', async (t) => {
  let n = 0
  const good = await buildApp(t, { session: { idGenerator: () => `custom-id-${String(++n).padStart(16, '0')}` } })
  const res = await good.app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  t.equal(res.json().id, 'custom-id-0000000000000001')
  t.equal(await good.client.exists(sessionKey(good.prefix, 'custom-id-0000000000000001')), 1)
  const bad = await buildApp(t, { session: { idGenerator: () => 'bad:id*with{chars}-long-enough' } })
  const refused = await bad.app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  t.equal(refused.statusCode, 500)
  t.equal(refused.json().code, 'FST_REDIS_SESSION_BAD_ID')
  t.same(await keysUnder(bad.client, bad.prefix), [])
  const notString = await buildApp(t, { session: { idGenerator: () => 42 as unknown as string } })
  const refusedToo = await notString.app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  t.equal(refusedToo.json().code, 'FST_REDIS_SESSION_BAD_ID')
})
