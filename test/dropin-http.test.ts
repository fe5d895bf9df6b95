// What reaches the browser and the log, as a user switching from @fastify/session meets it: cookie
// attributes browsers keep, no caching of session responses, and clear words for a wrong `redis`.
import { test } from 'tap'
import Fastify from 'fastify'
import redisSession from '../lib/index.js'
import type { RedisSessionOptions } from '../types/index.js'
import { SECRET, buildApp, sessionCookie, setCookies } from './helpers/app.js'
import { logoutRoute } from './helpers/routes.js'
import { freePort, startRedis } from './helpers/redis-server.js'

test('secure: auto with sameSite none or partitioned sends, over plain HTTP, a cookie browsers keep', async (t) => {
  for (const cookie of [{ sameSite: 'none' as const }, { sameSite: 'none' as const, partitioned: true }]) {
    const { app } = await buildApp(t, { fastify: { trustProxy: true }, session: { cookie } })
    const http = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
    const [plain] = setCookies(http)
    t.match(plain, /SameSite=Lax/, 'SameSite=None needs Secure: Lax instead over HTTP')
    t.notMatch(plain, /Partitioned|Secure/)
    const https = await app.inject({ method: 'POST', url: '/write', headers: { 'x-forwarded-proto': 'https' }, payload: { a: 1 } })
    const [secure] = setCookies(https)
    t.match(secure, /Secure/)
    t.match(secure, /SameSite=None/)
    if (cookie.partitioned === true) t.match(secure, /Partitioned/)
  }
})

test('a response that sets or clears the session cookie is not stored by caches; others are left alone', async (t) => {
  const { app } = await buildApp(t, {
    routes: (app) => {
      logoutRoute(app)
      app.post('/cached', async (req, reply) => {
        req.session.set('a', 1)
        return reply.header('cache-control', 'private, no-cache').send('mine')
      })
    }
  })
  const created = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  t.equal(created.headers['cache-control'], 'no-store', 'sets the cookie')
  const read = await app.inject({ url: '/read', headers: { cookie: sessionCookie(created) } })
  t.same(setCookies(read), [])
  t.equal(read.headers['cache-control'], undefined, 'no cookie sent: the app decides')
  const logout = await app.inject({ method: 'POST', url: '/logout', headers: { cookie: sessionCookie(created) } })
  t.match(setCookies(logout)[0], /Max-Age=0/)
  t.equal(logout.headers['cache-control'], 'no-store', 'clears the cookie')
  const cached = await app.inject({ method: 'POST', url: '/cached' })
  t.equal(cached.headers['cache-control'], 'private, no-cache', "the app's own header is kept")
})

test('a redis string that is no redis URL fails at registration, naming the option', async (t) => {
  for (const redis of ['', 'http://127.0.0.1:6379', 'not a url', 'localhost:6379']) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(redisSession, { redis, secret: SECRET } satisfies RedisSessionOptions).ready() }, {
      code: 'FST_REDIS_SESSION_INVALID_OPTION',
      message: /option "redis" must be a redis:\/\/ or rediss:\/\/ URL or a Unix socket path/
    }, JSON.stringify(redis))
  }
  const wrongPassword = Fastify()
  t.teardown(() => wrongPassword.close())
  await t.rejects(async () => { await wrongPassword.register(redisSession, { redis: 'redis//:hunter2@host', secret: SECRET }).ready() },
    { message: /^(?!.*hunter2)/ }, 'a mistyped URL is not echoed, password and all')
})

test('a Redis that refuses connections is named, with its cause, in a warning and in the 503\'s log line, never in its body', async (t) => {
  const port = await freePort()
  const lines: Array<{ level: number, msg: string, err?: { message: string } }> = []
  const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => { lines.push(JSON.parse(line)) } } } })
  t.teardown(() => app.close())
  await app.register(redisSession, { redis: `redis://:hunter2@127.0.0.1:${port}`, secret: SECRET, timeout: 300 })
  app.post('/write', async (req) => { req.session.set('a', 1); return 'ok' })
  const res = await app.inject({ method: 'POST', url: '/write' })
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'FST_REDIS_SESSION_STORE_UNAVAILABLE')
  t.notOk(res.body.includes(String(port)), 'the body names no port')
  t.notMatch(res.body, /ECONNREFUSED|127\.0\.0\.1/, 'nor an address or cause')
  const failed = lines.filter(line => line.level === 50)
  t.equal(failed.length, 1, 'the 503 is logged')
  t.match(JSON.stringify(failed[0]), `Redis at 127.0.0.1:${port}: connect ECONNREFUSED`, 'with the address and cause')
  const warnings = lines.filter(line => line.level === 40 && line.msg.includes('cannot reach'))
  t.equal(warnings.length, 1, 'one warning however often ioredis retries')
  t.match(warnings[0].msg, `Redis at 127.0.0.1:${port}: connect ECONNREFUSED`)
  t.notOk(JSON.stringify(lines).includes('hunter2'), 'no password in the log')
})

test('a Unix socket path is taken as the address, and named when nothing listens there', async (t) => {
  const path = `/tmp/fastify-session-redis-missing-${process.pid}.sock`
  const lines: Array<{ level: number, msg: string }> = []
  const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { lines.push(JSON.parse(line)) } } } })
  t.teardown(() => app.close())
  await app.register(redisSession, { redis: path, secret: SECRET, timeout: 300 })
  app.post('/write', async (req) => { req.session.set('a', 1); return 'ok' })
  const res = await app.inject({ method: 'POST', url: '/write' })
  t.equal(res.statusCode, 503)
  t.notOk(res.body.includes(path), 'the body names no path')
  t.match(JSON.stringify(lines.find(line => line.level === 50)), `Redis at ${path}: connect ENOENT`, 'the 503\'s log line does')
  t.ok(lines.some(line => line.level === 40 && line.msg.includes(`cannot reach Redis at ${path}`)))
})

test('once the Redis comes back, that is logged and requests are served again', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.stop())
  const lines: Array<{ level: number, msg: string }> = []
  const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => { lines.push(JSON.parse(line)) } } } })
  t.teardown(() => app.close())
  await app.register(redisSession, { redis: server.url, secret: SECRET, timeout: 300 })
  app.post('/write', async (req) => { req.session.set('a', 1); return 'ok' })
  t.equal((await app.inject({ method: 'POST', url: '/write' })).statusCode, 200)
  await server.kill()
  t.equal((await app.inject({ method: 'POST', url: '/write' })).statusCode, 503)
  // the 503 may come at once, before ioredis's next attempt has failed and been logged: poll, bounded
  for (let i = 0; i < 100 && !lines.some(line => line.msg.includes('cannot reach')); i++) await new Promise(resolve => setTimeout(resolve, 50))
  t.ok(lines.some(line => line.level === 40 && line.msg.includes('cannot reach')), 'the outage is logged')
  await server.restart()
  // ioredis reconnects on its own schedule: poll, bounded
  for (let i = 0; i < 100 && !lines.some(line => line.msg.includes('reachable again')); i++) await new Promise(resolve => setTimeout(resolve, 50))
  t.ok(lines.some(line => line.level === 30 && line.msg.includes(`Redis at 127.0.0.1:${server.port} is reachable again`)))
  t.equal((await app.inject({ method: 'POST', url: '/write' })).statusCode, 200)
})
