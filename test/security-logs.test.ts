import { test } from 'tap'
import { randomBytes } from 'node:crypto'
import { sign } from '@fastify/cookie'
import type { LightMyRequestResponse } from 'fastify'
import { OLD_SECRET, SECRET, buildApp, connect, sessionCookie, sessionKey } from './helpers/app.js'
import { logoutRoute } from './helpers/routes.js'
import { startRedis } from './helpers/redis-server.js'

const DATA = 'DATA-7f3a9c'

test('nothing logged at trace level holds a full id, a signed cookie, a secret or session data', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.stop())
  const admin = await connect(t, server.url)
  const lines: string[] = []
  const stream = { write: (line: string) => { lines.push(line) } }
  const { app, client, prefix } = await buildApp(t, {
    client: await connect(t, server.url),
    fastify: { logger: { level: 'trace', stream } },
    session: { secret: [SECRET, OLD_SECRET], timeout: 300 },
    routes (app) {
      app.post('/login', async (req) => {
        await req.session.regenerate()
        req.session.set('user', `${DATA}-user`)
        return { id: req.session.id }
      })
      logoutRoute(app)
      app.post('/nan', async (req) => {
        req.session.set('ratio', NaN)
        return 'no'
      })
      app.post('/write-refused', async (req) => {
        req.session.set('lost', `${DATA}-lost`)
        await admin.config('SET', 'min-replicas-to-write', '1')
        return 'no'
      })
    }
  })
  const ids: string[] = []
  const cookies: string[] = []
  const track = (res: LightMyRequestResponse): string => {
    const cookie = sessionCookie(res)
    cookies.push(cookie.slice('sid='.length), decodeURIComponent(cookie.slice('sid='.length)))
    return cookie
  }

  // create, read, change
  const created = await app.inject({ method: 'POST', url: '/write', payload: { secret: `${DATA}-created` } })
  ids.push(created.json().id)
  let cookie = track(created)
  t.equal((await app.inject({ url: '/read', headers: { cookie } })).statusCode, 200)
  t.equal((await app.inject({ method: 'POST', url: '/write', headers: { cookie }, payload: { more: `${DATA}-changed` } })).statusCode, 200)
  // a cookie signed by the older secret, re-issued
  const rotated = await app.inject({ url: '/read', headers: { cookie: `sid=${encodeURIComponent(sign(ids[0], OLD_SECRET))}` } })
  cookie = track(rotated)
  // regenerate, then destroy
  const login = await app.inject({ method: 'POST', url: '/login', headers: { cookie } })
  ids.push(login.json().id)
  cookie = track(login)
  t.equal((await app.inject({ method: 'POST', url: '/logout', headers: { cookie } })).statusCode, 200)
  // a corrupt stored session, discarded
  const corrupt = randomBytes(32).toString('base64url')
  ids.push(corrupt)
  await client.set(sessionKey(prefix, corrupt), `not JSON ${DATA}-corrupt`, 'EX', 60)
  t.equal((await app.inject({ url: '/read', headers: { cookie: `sid=${encodeURIComponent(sign(corrupt, SECRET))}` } })).json().isNew, true)
  // bad cookies: forged signature, unknown id
  const forged = randomBytes(32).toString('base64url')
  const unknown = randomBytes(32).toString('base64url')
  ids.push(forged, unknown)
  await app.inject({ url: '/read', headers: { cookie: `sid=${forged}.AAAA` } })
  await app.inject({ url: '/read', headers: { cookie: `sid=${encodeURIComponent(sign(unknown, SECRET))}` } })
  // a value JSON cannot hold, a write Redis refuses, a Redis that stops answering
  const fresh = await app.inject({ method: 'POST', url: '/write', payload: { secret: `${DATA}-second` } })
  ids.push(fresh.json().id)
  cookie = track(fresh)
  t.equal((await app.inject({ method: 'POST', url: '/nan', headers: { cookie } })).json().code, 'FST_REDIS_SESSION_INVALID_VALUE')
  t.equal((await app.inject({ method: 'POST', url: '/write-refused', headers: { cookie } })).json().code, 'FST_REDIS_SESSION_STORE_UNAVAILABLE')
  await admin.config('SET', 'min-replicas-to-write', '0')
  server.pause()
  t.equal((await app.inject({ url: '/read', headers: { cookie } })).json().code, 'FST_REDIS_SESSION_STORE_UNAVAILABLE')
  server.resume()

  const log = lines.join('')
  const records = lines.map(line => JSON.parse(line) as { level: number, plugin?: string, err?: { message: string } })
  t.ok(records.some(r => r.plugin === 'fastify-session-redis' && r.level === 20), 'the plugin logged at debug')
  t.ok(records.some(r => r.plugin === 'fastify-session-redis' && r.level === 40), 'and warned about the corrupt session')
  t.ok(records.some(r => r.err?.message.includes('NOREPLICAS') === true), 'the refused write was logged, with its cause')
  t.equal(ids.length, 6)
  for (const id of ids) t.notOk(log.includes(id), 'no full id')
  for (const value of cookies) t.notOk(log.includes(value), 'no cookie value')
  for (const secret of [SECRET, OLD_SECRET]) t.notOk(log.includes(secret), 'no secret')
  t.notOk(log.includes(DATA), 'no session data')
})
