import { test } from 'tap'
import type { Test } from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { OLD_SECRET, SECRET, buildApp, sessionCookie, setCookies, type BuildOptions, sessionKey } from './helpers/app.js'
import { loginRoute, touchRoute } from './helpers/routes.js'

interface RememberBody { on?: boolean, ttl?: number, user?: string }

const routes = (app: FastifyInstance): void => {
  app.post<{ Body: RememberBody | undefined }>('/remember', async (req) => {
    const { on, ttl, user } = req.body ?? {}
    if (user !== undefined) req.session.set('user', user)
    if (ttl !== undefined) req.session.setTtl(ttl)
    if (on === undefined) req.session.rememberMe()
    else req.session.rememberMe(on)
    return { id: req.session.id, persistent: req.session.isPersistent, modified: req.session.isModified() }
  })
  app.get('/persistent', async (req) => ({ persistent: req.session.isPersistent }))
  touchRoute(app, 'POST')
  app.post('/short-cookie', async (req) => { req.session.options({ maxAge: 60 }); return 'ok' })
  loginRoute(app, ['user'])
  app.post('/bad', async (req) => { req.session.rememberMe('yes' as unknown as boolean); return 'ok' })
}

async function build (t: Test, session: BuildOptions['session'] = {}) {
  return buildApp(t, { session, routes })
}

/** The session cookie a response set: its Max-Age, or undefined for a browser-session cookie. */
function maxAgeOf (res: LightMyRequestResponse, name = 'sid'): number | undefined {
  const cookie = res.cookies.find(c => c.name === name)
  if (cookie === undefined) throw new Error(`response set no ${name} cookie`)
  return cookie.maxAge
}

/** Asserts a Max-Age of `seconds`, give or take the second or two the request itself took. */
function aboutSeconds (t: Test, actual: number | undefined, seconds: number, message: string): void {
  t.ok(actual !== undefined && actual <= seconds && actual >= seconds - 2, `${message}: Max-Age ${String(actual)}, about ${seconds}`)
}

test('rememberMe: the cookie of that session persists for its remaining life; other sessions keep browser-session cookies', async (t) => {
  const { app, client, prefix } = await build(t)
  const plain = await app.inject({ method: 'POST', url: '/write', payload: { user: 'bob' } })
  t.equal(maxAgeOf(plain), undefined, 'a session not remembered: no Max-Age')

  const remembered = await app.inject({ method: 'POST', url: '/remember', payload: { user: 'alice' } })
  t.same(remembered.json().persistent, true)
  aboutSeconds(t, maxAgeOf(remembered), 86400, 'the idle ttl')
  const stored = await client.get(sessionKey(prefix, remembered.json().id))
  t.match(stored, /^\{"v":1,"a":\d+,"t":0,"c":\d+,"p":1,"d":\{"user":"alice"\}\}$/, 'kept with the session, after "c"')

  const read = await app.inject({ url: '/persistent', headers: { cookie: sessionCookie(remembered) } })
  t.same(read.json(), { persistent: true })
  aboutSeconds(t, maxAgeOf(read), 86400, 'a rolling read pushes the expiry forward, and the cookie follows it')
  const plainRead = await app.inject({ url: '/persistent', headers: { cookie: sessionCookie(plain) } })
  t.same(plainRead.json(), { persistent: false })
  t.same(setCookies(plainRead), [], 'the other session\'s cookie is not sent again')
})

test('rememberMe: Max-Age is the session\'s own ttl, capped by its absolute deadline', async (t) => {
  const { app } = await build(t, { absoluteTtl: 7200 })
  const ownTtl = await app.inject({ method: 'POST', url: '/remember', payload: { ttl: 3600 } })
  aboutSeconds(t, maxAgeOf(ownTtl), 3600, 'setTtl(3600)')
  const capped = await app.inject({ method: 'POST', url: '/remember', payload: { ttl: 30 * 86400 } })
  aboutSeconds(t, maxAgeOf(capped), 7200, 'setTtl of 30 days with 2 hours to the deadline')
  const read = await app.inject({ url: '/persistent', headers: { cookie: sessionCookie(capped) } })
  aboutSeconds(t, maxAgeOf(read), 7200, 'on a later read too')
})

test('rememberMe(false) turns it back into a browser-session cookie; the same answer twice changes nothing', async (t) => {
  const { app, client, prefix } = await build(t)
  const on = await app.inject({ method: 'POST', url: '/remember', payload: { user: 'alice' } })
  const cookie = sessionCookie(on)
  const again = await app.inject({ method: 'POST', url: '/remember', payload: { on: true }, headers: { cookie } })
  t.same(again.json(), { id: on.json().id, persistent: true, modified: false }, 'already remembered: nothing to save')

  const off = await app.inject({ method: 'POST', url: '/remember', payload: { on: false }, headers: { cookie } })
  t.same(off.json(), { id: on.json().id, persistent: false, modified: true })
  t.equal(maxAgeOf(off), undefined, 'sent again, without Max-Age')
  t.notMatch(await client.get(sessionKey(prefix, on.json().id)), /"p":/, 'no longer stored')
  const read = await app.inject({ url: '/persistent', headers: { cookie } })
  t.same(read.json(), { persistent: false })
  t.same(setCookies(read), [], 'a browser-session cookie is not sent again')

  const offAgain = await app.inject({ method: 'POST', url: '/remember', payload: { on: false }, headers: { cookie } })
  t.same(offAgain.json().modified, false)
  t.same(setCookies(offAgain), [])
})

test('rememberMe: a cookie re-issued for a rotated secret stays persistent', async (t) => {
  const before = await build(t, { secret: OLD_SECRET })
  const created = await before.app.inject({ method: 'POST', url: '/remember', payload: { ttl: 3600 } })
  const { app } = await buildApp(t, { client: before.client, session: { prefix: before.prefix, secret: [SECRET, OLD_SECRET], rolling: false }, routes })
  const res = await app.inject({ url: '/persistent', headers: { cookie: sessionCookie(created) } })
  t.same(res.json(), { persistent: true })
  t.not(sessionCookie(res), sessionCookie(created), 're-signed')
  aboutSeconds(t, maxAgeOf(res), 3600, 'and still persistent')
})

test('rememberMe without rolling: a save or touch() moves the expiry and re-sends the cookie; a read does not', async (t) => {
  const { app } = await build(t, { rolling: false, ttl: 600 })
  const created = await app.inject({ method: 'POST', url: '/remember' })
  aboutSeconds(t, maxAgeOf(created), 600, 'created')
  const cookie = sessionCookie(created)
  const read = await app.inject({ url: '/persistent', headers: { cookie } })
  t.same(setCookies(read), [], 'a read leaves the expiry, and the cookie, alone')
  const write = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 }, headers: { cookie } })
  aboutSeconds(t, maxAgeOf(write), 600, 'a save')
  const touched = await app.inject({ method: 'POST', url: '/touch', headers: { cookie } })
  aboutSeconds(t, maxAgeOf(touched), 600, 'touch()')
})

test('rememberMe: options({ maxAge }) still sets this response\'s Max-Age; touch() on a rolling session sends one cookie', async (t) => {
  const { app } = await build(t)
  const created = await app.inject({ method: 'POST', url: '/remember' })
  const cookie = sessionCookie(created)
  const short = await app.inject({ method: 'POST', url: '/short-cookie', headers: { cookie } })
  t.equal(maxAgeOf(short), 60, 'the response\'s own Max-Age wins')
  const touched = await app.inject({ method: 'POST', url: '/touch', headers: { cookie } })
  t.equal(setCookies(touched).length, 1)
  aboutSeconds(t, maxAgeOf(touched), 86400, 'touch()')
})

test('rememberMe(false) with cookie.maxAge configured: back to the configured Max-Age', async (t) => {
  const { app } = await build(t, { cookie: { maxAge: 120 } })
  const created = await app.inject({ method: 'POST', url: '/remember', payload: { ttl: 3600 } })
  aboutSeconds(t, maxAgeOf(created), 3600, 'remembered: the session\'s life')
  const off = await app.inject({ method: 'POST', url: '/remember', payload: { on: false }, headers: { cookie: sessionCookie(created) } })
  t.equal(maxAgeOf(off), 120, 'the configured cookie.maxAge')
})

test('rememberMe is per session: regenerate() starts a session that is not remembered, as it drops setTtl', async (t) => {
  const { app } = await build(t)
  const created = await app.inject({ method: 'POST', url: '/remember', payload: { user: 'alice' } })
  const login = await app.inject({ method: 'POST', url: '/login', headers: { cookie: sessionCookie(created) } })
  t.equal(maxAgeOf(login), undefined, 'the new id\'s cookie is a browser-session cookie')
  const again = await app.inject({ method: 'POST', url: '/remember', headers: { cookie: sessionCookie(login) } })
  t.same(again.json().persistent, true, 'call rememberMe() after regenerate()')
  aboutSeconds(t, maxAgeOf(again), 86400, 'and the cookie persists again')
})

test('rememberMe with userKey: the index scripts still find the user after the new field', async (t) => {
  const { app, client, prefix } = await build(t, { userKey: 'user', trackClient: true })
  const created = await app.inject({ method: 'POST', url: '/remember', payload: { user: 'alice' }, headers: { 'user-agent': 'test' } })
  t.match(await client.get(sessionKey(prefix, created.json().id)), /^\{"v":1,"a":\d+,"t":0,"c":\d+,"u":"alice","ip":"127\.0\.0\.1","ua":"test","p":1,"d":/)
  t.equal((await app.sessions.list('alice')).length, 1)
  t.equal(await app.sessions.destroyAll('alice'), 1, 'destroyAll matched "u" right after "c"')
})

test('rememberMe takes a boolean; anything else is a coded error', async (t) => {
  const { app } = await build(t)
  const res = await app.inject({ method: 'POST', url: '/bad' })
  t.equal(res.statusCode, 500)
  t.equal(res.json().code, 'FST_REDIS_SESSION_INVALID_VALUE')
})

test('a stored "p" other than 1 is corrupt metadata: the session is discarded', async (t) => {
  const { app, client, prefix } = await build(t)
  const created = await app.inject({ method: 'POST', url: '/remember', payload: { user: 'alice' } })
  const key = sessionKey(prefix, created.json().id)
  await client.set(key, (await client.get(key) as string).replace('"p":1', '"p":true'), 'EX', 60)
  const read = await app.inject({ url: '/read', headers: { cookie: sessionCookie(created) } })
  t.equal(read.json().isNew, true)
  t.equal(await client.exists(key), 0, 'deleted')
})

test('rememberMe with idFrom: header: the header carries the id; no cookie, so nothing to persist', async (t) => {
  const { app } = await build(t, { idFrom: 'header' })
  const created = await app.inject({ method: 'POST', url: '/remember' })
  t.same(setCookies(created), [])
  const value = created.headers['x-session-id'] as string
  const read = await app.inject({ url: '/persistent', headers: { 'x-session-id': value } })
  t.same(read.json(), { persistent: true })
  t.equal(read.headers['x-session-id'], value, 'sent again as a cookie would be')
})
