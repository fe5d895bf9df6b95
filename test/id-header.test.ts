import { test } from 'tap'
import { sign, unsign } from '@fastify/cookie'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { OLD_SECRET, SECRET, buildApp, sessionCookie, setCookies, sharedRedisUrl, sessionKey } from './helpers/app.js'
import { loginRoute, logoutRoute } from './helpers/routes.js'
import { monitorRedis } from './helpers/monitor.js'

const H = 'x-session-id'

const lifecycle = (app: FastifyInstance): void => {
  logoutRoute(app)
  loginRoute(app, ['user'])
  app.post('/regenerate', async (req) => { await req.session.regenerate(); return 'ok' })
}

/** The session header a response carried. */
function header (res: LightMyRequestResponse, name = H): string {
  const value = res.headers[name]
  if (typeof value !== 'string') throw new Error(`response carried no ${name} header`)
  return value
}

/** The id a signed header value carries, checked against SECRET alone. */
function idOf (value: string): string {
  const { valid, value: id } = unsign(value, SECRET)
  if (!valid || id === null) throw new Error('not signed by SECRET')
  return id
}

test('idFrom: header: a new session is sent in the header, signed, and read back from it; no cookie is set', async (t) => {
  const { app, client, prefix } = await buildApp(t, { session: { idFrom: 'header' } })
  const created = await app.inject({ method: 'POST', url: '/write', payload: { user: 'alice' } })
  const value = header(created)
  t.equal(idOf(value), created.json().id, 'the same signed value the cookie would hold')
  t.same(setCookies(created), [], 'no Set-Cookie')
  t.equal(created.headers['cache-control'], 'no-store')
  t.ok(await client.get(sessionKey(prefix, created.json().id)))

  const read = await app.inject({ url: '/read', headers: { [H]: value } })
  t.same(read.json(), { id: created.json().id, isNew: false, data: { user: 'alice' } })
  t.notOk(H in read.headers, 'a current header is not sent again')
  t.same(setCookies(read), [])

  const untouched = await app.inject({ url: '/untouched' })
  t.notOk(H in untouched.headers, 'no session, no header')
})

test('idFrom: header: header names are matched in any letter case', async (t) => {
  const { app } = await buildApp(t, { session: { idFrom: 'header', header: 'X-Auth-Session' } })
  const created = await app.inject({ method: 'POST', url: '/write', payload: { user: 'alice' } })
  const value = header(created, 'x-auth-session')
  const read = await app.inject({ url: '/read', headers: { 'X-AUTH-SESSION': value } })
  t.same(read.json().data, { user: 'alice' })
})

test('idFrom: header: the cookie is not read', async (t) => {
  const { app } = await buildApp(t, { session: { idFrom: 'header' } })
  const created = await app.inject({ method: 'POST', url: '/write', payload: { user: 'alice' } })
  const asCookie = `sid=${encodeURIComponent(header(created))}`
  const read = await app.inject({ url: '/read', headers: { cookie: asCookie } })
  t.equal(read.json().isNew, true, 'a valid signed id in the cookie opens nothing')
  t.not(read.json().id, created.json().id)
})

test('idFrom: header: a value that fails verification gets a fresh session, no header and no Redis command', async (t) => {
  const { app, client } = await buildApp(t, { session: { idFrom: 'header' } })
  const monitor = await monitorRedis(t, await sharedRedisUrl())
  const created = await app.inject({ method: 'POST', url: '/write', payload: { user: 'alice' } })
  const good = header(created)
  const id = idOf(good)
  const cases: Record<string, string> = {
    'a bad signature': good.slice(0, -1) + (good.endsWith('A') ? 'B' : 'A'),
    'no signature': id,
    'a retired secret': sign(id, OLD_SECRET),
    'an oversized value': 'a'.repeat(8192),
    'a signed, malformed id': sign(`${'a'.repeat(24)}*:{x}`, SECRET),
    'a signed, short id': sign('a'.repeat(21), SECRET)
  }
  await monitor.take()
  for (const [name, value] of Object.entries(cases)) {
    const res = await app.inject({ url: '/read', headers: { [H]: value } })
    t.equal(res.json().isNew, true, `${name}: a fresh session`)
    t.notOk(H in res.headers, `${name}: no header`)
  }
  const repeated = await app.inject({ url: '/read', headers: { [H]: [good, good] } })
  t.equal(repeated.json().isNew, true, 'a repeated header is refused, not picked from')
  t.same(await monitor.takeFrom(client), [], 'not one Redis command')
  t.equal(app.sessions.stats().rejectedCookies, Object.keys(cases).length + 1)

  const empty = await app.inject({ url: '/read', headers: { [H]: '' } })
  t.equal(empty.json().isNew, true, 'an empty header is no session')
  t.equal(app.sessions.stats().rejectedCookies, Object.keys(cases).length + 1, 'and not counted as a rejected one')
})

test('idFrom: header: a value signed by an older secret is accepted and re-issued signed by the first', async (t) => {
  const before = await buildApp(t, { session: { idFrom: 'header', secret: OLD_SECRET } })
  const created = await before.app.inject({ method: 'POST', url: '/write', payload: { user: 'alice' } })
  const byOld = header(created)
  const same = { client: before.client, session: { prefix: before.prefix, idFrom: 'header' as const } }

  const { app } = await buildApp(t, { ...same, session: { ...same.session, secret: [SECRET, OLD_SECRET] } })
  const res = await app.inject({ url: '/read', headers: { [H]: byOld } })
  t.same(res.json().data, { user: 'alice' })
  const renewed = header(res)
  t.equal(idOf(renewed), created.json().id, 're-issued, verifiable by the first secret alone')
  t.equal(res.headers['cache-control'], 'no-store')
  const next = await app.inject({ url: '/read', headers: { [H]: renewed } })
  t.same(next.json().data, { user: 'alice' })
  t.notOk(H in next.headers, 'a current value is not re-issued')
})

test('idFrom: header: regenerate sends the new id; destroy, and a regenerate that keeps nothing, send the header empty', async (t) => {
  const { app, client, prefix } = await buildApp(t, { session: { idFrom: 'header' }, routes: lifecycle })
  const created = await app.inject({ method: 'POST', url: '/write', payload: { user: 'alice' } })
  const first = header(created)

  const login = await app.inject({ method: 'POST', url: '/login', headers: { [H]: first } })
  const second = header(login)
  t.equal(idOf(second), login.json().id, 'the new id')
  t.not(login.json().id, created.json().id)
  t.equal(await client.exists(sessionKey(prefix, created.json().id)), 0, 'the old id is gone')
  const read = await app.inject({ url: '/read', headers: { [H]: second } })
  t.same(read.json().data, { user: 'alice' })

  const logout = await app.inject({ method: 'POST', url: '/logout', headers: { [H]: second } })
  t.equal(logout.headers[H], '', 'sent empty: the client drops its id')
  t.equal(logout.headers['cache-control'], 'no-store')
  t.same(setCookies(logout), [])
  t.equal(await client.exists(sessionKey(prefix, login.json().id)), 0)

  const again = await app.inject({ method: 'POST', url: '/write', payload: { user: 'bob' } })
  const bare = await app.inject({ method: 'POST', url: '/regenerate', headers: { [H]: header(again) } })
  t.equal(bare.headers[H], '', 'a bare regenerate stores nothing and empties the header')
})

test('idFrom: both: the cookie and the header are set together; either works; the header wins over the cookie', async (t) => {
  const { app } = await buildApp(t, { session: { idFrom: 'both' }, routes: lifecycle })
  const alice = await app.inject({ method: 'POST', url: '/write', payload: { user: 'alice' } })
  t.equal(`sid=${header(alice)}`, sessionCookie(alice), 'the same signed value in both')
  const bob = await app.inject({ method: 'POST', url: '/write', payload: { user: 'bob' } })

  const byCookie = await app.inject({ url: '/read', headers: { cookie: sessionCookie(alice) } })
  t.same(byCookie.json().data, { user: 'alice' }, 'the cookie alone')
  const byHeader = await app.inject({ url: '/read', headers: { [H]: header(bob) } })
  t.same(byHeader.json().data, { user: 'bob' }, 'the header alone')
  const both = await app.inject({ url: '/read', headers: { cookie: sessionCookie(alice), [H]: header(bob) } })
  t.same(both.json().data, { user: 'bob' }, 'both: the header wins')
  const emptyHeader = await app.inject({ url: '/read', headers: { cookie: sessionCookie(alice), [H]: '' } })
  t.same(emptyHeader.json().data, { user: 'alice' }, 'an empty header is none: the cookie counts')
  const forged = await app.inject({ url: '/read', headers: { cookie: sessionCookie(alice), [H]: header(bob).slice(0, -2) + 'xx' } })
  t.equal(forged.json().isNew, true, 'a forged header is refused, not passed over for the cookie')

  const logout = await app.inject({ method: 'POST', url: '/logout', headers: { [H]: header(bob) } })
  t.equal(logout.headers[H], '', 'the header sent empty')
  t.match(setCookies(logout)[0], /^sid=; Max-Age=0; /, 'and the cookie cleared')
})

test('options: idFrom and header are checked at registration', async (t) => {
  const cases = [
    { session: { idFrom: 'query' }, option: 'idFrom' },
    { session: { idFrom: 'header', header: 'x session' }, option: 'header' },
    { session: { idFrom: 'both', header: '' }, option: 'header' },
    { session: { idFrom: 'header', header: 'x-id\r\nx-evil' }, option: 'header' },
    { session: { header: 'x-session' }, option: 'header' },
    { session: { idFrom: 'cookie', header: 'x-session' }, option: 'header' }
  ]
  for (const { session, option } of cases) {
    const err = await buildApp(t, { session: session as object }).then(() => null, (err: Error & { code?: string }) => err)
    t.equal(err?.code, 'FST_REDIS_SESSION_INVALID_OPTION', JSON.stringify(session))
    t.match(err?.message, `option "${option}"`)
  }
})
