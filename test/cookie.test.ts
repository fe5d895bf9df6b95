import { test } from 'tap'
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
