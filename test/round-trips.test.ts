import { test } from 'tap'
import { sign } from '@fastify/cookie'
import type { InjectOptions } from 'fastify'
import { Redis } from 'ioredis'
import { buildApp, connect, sessionCookie, sharedRedisUrl, SECRET, sessionKey } from './helpers/app.js'
import { loginRoute, logoutRoute } from './helpers/routes.js'
import { startRedis } from './helpers/redis-server.js'
import { monitorRedis } from './helpers/monitor.js'

// Counts what the plugin's own connection sends, as Redis's MONITOR reports it: commands a
// script runs inside Redis are not round trips and are left out.
test('Redis round trips per request', async (t) => {
  const server = await startRedis()
  const client = await connect(t, server.url)
  const monitor = await monitorRedis(t, server.url)
  const { app } = await buildApp(t, {
    client,
    routes: (app) => {
      loginRoute(app, ['a'])
      logoutRoute(app)
      app.post('/short', async (req) => { req.session.setTtl(60); return 'ok' })
    }
  })
  // warm up: the first script call on a fresh server loads the script (NOSCRIPT, then EVAL)
  const warm = await app.inject({ method: 'POST', url: '/write', payload: { w: 1 } })
  await app.inject({ url: '/read', headers: { cookie: sessionCookie(warm) } })
  await monitor.take()

  async function commandsFor (request: InjectOptions): Promise<string[]> {
    await app.inject(request)
    return (await monitor.takeFrom(client)).map(c => c.name)
  }

  t.same(await commandsFor({ url: '/untouched' }), [], 'no cookie, session untouched: 0')
  t.same(await commandsFor({ url: '/read' }), [], 'no cookie, session only read: 0')

  const created = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  t.same((await monitor.takeFrom(client)).map(c => c.name), ['evalsha'], 'no cookie, session created: 1')
  const cookie = sessionCookie(created)

  t.same(await commandsFor({ url: '/read', headers: { cookie } }), ['getex'], 'valid cookie, session only read: 1')
  t.same(await commandsFor({ url: '/untouched', headers: { cookie } }), ['getex'], 'valid cookie, route ignores the session: 1')
  t.same(await commandsFor({ method: 'POST', url: '/write', headers: { cookie }, payload: { a: 2 } }), ['getex', 'evalsha'], 'valid cookie, session changed: 2')

  const forged = cookie.slice(0, -3) + 'AAA'
  t.same(await commandsFor({ url: '/read', headers: { cookie: forged } }), [], 'bad signature: 0')
  t.same(await commandsFor({ url: '/read', headers: { cookie: 'sid=' + created.json().id } }), [], 'no signature: 0')
  const malformed = `sid=${encodeURIComponent(sign('bad*id:{x}\nwith-enough-characters', SECRET))}`
  t.same(await commandsFor({ url: '/read', headers: { cookie: malformed } }), [], 'signed but malformed id: 0')

  t.same(await commandsFor({ method: 'POST', url: '/login', headers: { cookie } }), ['getex', 'getdel', 'evalsha'], 'regenerate: load, GETDEL, save')
  const fresh = await app.inject({ method: 'POST', url: '/write', payload: { b: 1 } })
  await monitor.take()
  t.same(await commandsFor({ method: 'POST', url: '/logout', headers: { cookie: sessionCookie(fresh) } }), ['getex', 'getdel'], 'destroy: load, GETDEL (an alias left by a rotation leads to the session to end too)')

  const short = await app.inject({ method: 'POST', url: '/short' })
  await monitor.take()
  t.same(await commandsFor({ url: '/read', headers: { cookie: sessionCookie(short) } }), ['getex', 'pexpireat'], 'a session with its own ttl, only read: the read, then its own TTL')
  // teardowns run in order: the server goes last, after every connection to it is closed
  t.teardown(() => server.stop())
})

test('a server that forgot the scripts (SCRIPT FLUSH, a restart) gets each one again with EVAL, once', async (t) => {
  const server = await startRedis()
  const client = await connect(t, server.url)
  const admin = await connect(t, server.url)
  const monitor = await monitorRedis(t, server.url)
  const { app, prefix } = await buildApp(t, { client, session: { rolling: false } })
  const created = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const cookie = sessionCookie(created)
  await admin.script('FLUSH')
  await monitor.take()

  const names = async (): Promise<string[]> => (await monitor.takeFrom(client)).map(c => c.name)
  const write = await app.inject({ method: 'POST', url: '/write', headers: { cookie }, payload: { b: 2 } })
  t.equal(write.statusCode, 200)
  t.same(await names(), ['evalsha', 'eval', 'evalsha', 'eval'], 'load and save: each refused once, then sent whole')
  await app.inject({ method: 'POST', url: '/write', headers: { cookie }, payload: { c: 3 } })
  t.same(await names(), ['evalsha', 'evalsha'], 'known again: by SHA only')
  const stored = JSON.parse(await admin.get(sessionKey(prefix, created.json().id)) as string)
  t.same(stored.d, { a: 1, b: 2, c: 3 }, 'nothing lost on the way')
  t.teardown(() => server.stop())
})

test('a client with an ioredis keyPrefix: scripts and plain commands alike store under it', async (t) => {
  const url = await sharedRedisUrl()
  const prefixed = new Redis(url, { keyPrefix: 'kp-test:' })
  t.teardown(() => prefixed.quit())
  const admin = await connect(t, url)
  for (const rolling of [true, false]) {
    const { app, prefix } = await buildApp(t, { client: prefixed, session: { rolling } })
    const created = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
    const cookie = sessionCookie(created)
    await app.inject({ method: 'POST', url: '/write', headers: { cookie }, payload: { b: 2 } })
    const read = await app.inject({ url: '/read', headers: { cookie } })
    t.same(read.json().data, { a: 1, b: 2 }, `rolling ${rolling}: loaded back through the prefix`)
    const stored = await admin.get('kp-test:' + sessionKey(prefix, created.json().id))
    t.same(JSON.parse(stored as string).d, { a: 1, b: 2 }, `rolling ${rolling}: stored under the client's keyPrefix`)
  }
})
