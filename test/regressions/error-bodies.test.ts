import { test, type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { sign } from '@fastify/cookie'
import { Writable } from 'node:stream'
import type { LightMyRequestResponse } from 'fastify'
import { SECRET, buildApp, sessionCookie } from '../helpers/app.js'
import { startRedis, waitFor } from '../helpers/redis-server.js'

// A 503 used to tell the client "Redis at 127.0.0.1:6399: connect ECONNREFUSED": addresses, ports
// and causes belong in the log and in the error's `cause`, never in what Fastify sends.

/** What a response body may hold of an error: Fastify's four fields, a message free of internals. */
function clean (t: Test, res: LightMyRequestResponse, what: string, secrets: string[]): void {
  const body = res.json()
  t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'], `${what}: only the code, the status and a message`)
  t.match(body.code, /^FST_REDIS_SESSION_/, `${what}: a coded error`)
  for (const secret of secrets) t.notOk(res.body.includes(secret), `${what}: says nothing of ${secret}`)
  t.notMatch(res.body, /\bat .*:\d+:\d+|ECONN|Redis at|127\.0\.0\.1|localhost/, `${what}: no stack, address or cause`)
}

test('a 503 names no address, port or cause; the log has them', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.stop())
  await server.kill()
  const lines: string[] = []
  const stream = new Writable({
    write (chunk: Buffer, _enc, next) {
      lines.push(chunk.toString())
      next()
    }
  })
  const port = new URL(server.url).port
  const { app } = await buildApp(t, { session: { client: undefined, redis: server.url, timeout: 300 }, fastify: { logger: { level: 'warn', stream } } })
  // the plugin's connection is made on first use
  t.equal((await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })).statusCode, 503)
  await waitFor('the connection failure to be known', () => lines.some(line => line.includes('cannot reach')))
  for (const [what, url] of [['a write', '/write'], ['a read', '/read']] as const) {
    const res = url === '/write'
      ? await app.inject({ method: 'POST', url, payload: { a: 1 } })
      : await app.inject({ url, headers: { cookie: 'sid=' + encodeURIComponent(sign(randomBytes(32).toString('base64url'), SECRET)) } })
    t.equal(res.statusCode, 503, `${what}: 503`)
    clean(t, res, what, [port])
  }
  const errorLogs = lines.filter(line => JSON.parse(line).level === 50)
  t.ok(errorLogs.length >= 3, 'each 503 is logged')
  t.ok(errorLogs.every(line => line.includes(`127.0.0.1:${port}`)), 'with the address that failed')
})

test('the coded errors a route can meet carry no id, key or stack', async (t) => {
  const { app, prefix } = await buildApp(t, {
    session: { maxBytes: 256 },
    routes (app) {
      app.post('/bad-value', async (req) => {
        req.session.set('fn', (() => 1) as unknown as string)
        return 'no'
      })
      app.post('/big', async (req) => {
        req.session.set('big', 'x'.repeat(1000))
        return 'no'
      })
      app.post('/bad-key', async (req) => {
        req.session.set('', 1)
        return 'no'
      })
    }
  })
  const created = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const cookie = sessionCookie(created)
  const id = created.json().id as string
  for (const [what, url, status] of [['a value JSON cannot hold', '/bad-value', 500], ['a session over maxBytes', '/big', 507], ['an empty key', '/bad-key', 500]] as const) {
    const res = await app.inject({ method: 'POST', url, headers: { cookie } })
    t.equal(res.statusCode, status, `${what}: ${status}`)
    clean(t, res, what, [id, prefix])
  }
})

test('an idGenerator that returns an unusable id: the coded 500, without the id', async (t) => {
  const { app } = await buildApp(t, { session: { idGenerator: () => 'not-an-id!' } })
  const res = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  t.equal(res.statusCode, 500)
  clean(t, res, 'a bad generated id', ['not-an-id!'])
})
