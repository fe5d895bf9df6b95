// A read that times out while Redis is stalled still reaches Redis once it resumes: ioredis has
// already sent (or queued) it. The rolling read used to be `GETEX … PX ttl`, which then gave the
// key a full idle TTL counted from whenever Redis ran it, past the absolute deadline and past a
// session's own shorter TTL, and the correction that normally follows never came. The same held
// for a `touch()` without rolling (`PEXPIRE`) and for a save (`SET … PX`) that ran late.
import { test, type Test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import type { FastifyInstance, InjectOptions } from 'fastify'
import type { RedisSessionOptions } from '../../types/index.js'
import { sign } from '@fastify/cookie'
import { SECRET, buildApp, connect, sessionCookie, sessionKey } from '../helpers/app.js'
import { SessionStore } from '../../lib/redis/store.js'
import { KeyExpiry } from '../../lib/model/expiry.js'
import { newStats } from '../../lib/model/stats.js'
import { startRedis, type RedisServer } from '../helpers/redis-server.js'

const TIMEOUT = 200
/** How long Redis stays stalled after the request got its 503: what a late command would gain. */
const STALLED_AFTER = 400

interface Stalled {
  app: FastifyInstance
  client: Redis
  server: RedisServer
  prefix: string
}

async function setup (t: Test, session: Partial<RedisSessionOptions>, routes?: (app: FastifyInstance, server: () => RedisServer) => void): Promise<Stalled> {
  const server = await startRedis()
  t.teardown(() => server.stop())
  const client = new Redis(server.url)
  client.on('error', () => {}) // the stall may surface as connection errors; the plugin reports them per request
  t.teardown(() => { client.disconnect() })
  const built = await buildApp(t, { client, session: { timeout: TIMEOUT, ...session }, routes: (app) => routes?.(app, () => server) })
  return { ...built, server }
}

/**
 * Sends a request that fails with the 503 because Redis is stalled (the route may stall it itself),
 * keeps Redis stalled a while longer, resumes it and waits until everything the app's connection had
 * queued has run. Returns when the request started and when its answer came.
 */
async function lateRequest (t: Test, { app, client, server }: Stalled, options: InjectOptions, stallFirst = true): Promise<{ sent: number, answered: number }> {
  if (stallFirst) server.pause()
  const sent = Date.now()
  let answered: number
  try {
    const res = await app.inject(options)
    answered = Date.now()
    t.equal(res.statusCode, 503, 'the request failed at the timeout')
    t.equal(res.json().code, 'FST_REDIS_SESSION_STORE_UNAVAILABLE')
    await sleep(STALLED_AFTER)
  } finally {
    server.resume()
  }
  // replies come in order on one connection: once this one is back, the late commands have run
  await client.ping()
  return { sent, answered }
}

test('a read that ran late, after a stall, leaves the key no later than the absolute deadline', async (t) => {
  const stalled = await setup(t, { ttl: 3600, absoluteTtl: 20 })
  const { app, client, prefix } = stalled
  const created = await app.inject({ method: 'POST', url: '/write', payload: { user: 'ann' } })
  const cookie = sessionCookie(created)
  const key = sessionKey(prefix, created.json().id as string)
  const deadline = JSON.parse(await client.get(key) as string).a as number
  t.equal(await client.pexpiretime(key), deadline, 'stored to end at its deadline')

  await lateRequest(t, stalled, { url: '/read', headers: { cookie } })
  const expiresAt = await client.pexpiretime(key)
  t.ok(expiresAt <= deadline, `the key ends by the absolute deadline (${expiresAt - deadline} ms after it)`)
  t.ok(expiresAt > Date.now(), 'and is still there')
  const read = await app.inject({ url: '/read', headers: { cookie } })
  t.same(read.json().data, { user: 'ann' }, 'the session goes on')
})

test('a read that ran late gives a session with its own shorter TTL no more than that TTL from the request', async (t) => {
  const stalled = await setup(t, { ttl: 3600 }, (app) => {
    app.post('/short', async (req) => { req.session.setTtl(30); return 'ok' })
  })
  const { app, client, prefix } = stalled
  const created = await app.inject({ method: 'POST', url: '/short' })
  const cookie = sessionCookie(created)
  const key = sessionKey(prefix, idOf(cookie))

  const { sent, answered } = await lateRequest(t, stalled, { url: '/read', headers: { cookie } })
  const expiresAt = await client.pexpiretime(key)
  t.ok(expiresAt <= answered + 30_000, `no later than 30 s after the request (${expiresAt - answered - 30_000} ms past it)`)
  t.ok(expiresAt >= sent + 30_000, 'and the request did count as a read')
})

test('a read that ran late gives a session on the configured TTL its idle time from the request, not from when Redis ran it', async (t) => {
  const stalled = await setup(t, { ttl: 600 })
  const { app, client, prefix } = stalled
  const created = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const cookie = sessionCookie(created)
  const key = sessionKey(prefix, created.json().id as string)

  const { sent, answered } = await lateRequest(t, stalled, { url: '/read', headers: { cookie } })
  const expiresAt = await client.pexpiretime(key)
  t.ok(expiresAt <= answered + 600_000, `no later than the TTL after the request (${expiresAt - answered - 600_000} ms past it)`)
  t.ok(expiresAt >= sent + 600_000, 'and no earlier than the TTL after it was sent')
})

test('a touch() without rolling, and a save, that ran late expire counted from the request', async (t) => {
  const stalled = await setup(t, { ttl: 600, rolling: false }, (app, server) => {
    app.get('/touch', async (req) => {
      req.session.touch()
      server().pause()
      return 'ok'
    })
    app.post('/change', async (req) => {
      req.session.set('user', 'bob')
      server().pause()
      return 'ok'
    })
  })
  const { app, client, prefix } = stalled
  const created = await app.inject({ method: 'POST', url: '/write', payload: { user: 'ann' } })
  const cookie = sessionCookie(created)
  const key = sessionKey(prefix, created.json().id as string)

  for (const options of [{ url: '/touch', headers: { cookie } }, { method: 'POST' as const, url: '/change', headers: { cookie } }]) {
    const { sent, answered } = await lateRequest(t, stalled, options, false)
    const expiresAt = await client.pexpiretime(key)
    t.ok(expiresAt <= answered + 600_000, `${options.url}: no later than the TTL after the request (${expiresAt - answered - 600_000} ms past it)`)
    t.ok(expiresAt >= sent + 600_000, `${options.url}: and no earlier than the TTL after it was sent`)
  }
})

test('a save that runs late and finds a newer version puts it back to expire counted from the save, not from when it ran', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.stop())
  const client = await connect(t, server.url)
  const busy = await connect(t, server.url)
  const store = new SessionStore({ client, prefix: 'late:', timeout: 5000, stats: newStats() })
  const now = Date.now()
  const newer = `{"v":7,"a":${now + 3_600_000},"t":0,"c":${now},"d":{"by":"another instance"}}`
  await client.set('late:id', newer, 'EX', 1000)
  // Redis runs one script at a time: the save waits behind this one, 600 ms
  const blocking = busy.eval(`
    local start = redis.call('TIME')
    repeat
      local now = redis.call('TIME')
    until (now[1] - start[1]) * 1000000 + (now[2] - start[2]) > 600000
    return 1`, 0)
  await sleep(50)
  const sent = Date.now()
  const saving = store.save('id', 6, `{"v":7,"a":${now + 3_600_000},"t":0,"c":${now},"d":{}}`, new KeyExpiry('PXAT', sent + 900_000, sent + 900_000), 600)
  const called = Date.now()
  await blocking
  t.same(await saving, { status: 'conflict', current: newer })
  const expiresAt = await client.pexpiretime('late:id')
  t.ok(expiresAt <= called + 600_000, `the newer version expires no later than its TTL after the save (${expiresAt - called - 600_000} ms past it)`)
  t.ok(expiresAt >= sent + 600_000, 'and no earlier')
})

function idOf (cookie: string): string {
  return decodeURIComponent(cookie.slice('sid='.length)).split('.')[0]
}

test('a late read of a key that holds no session leaves it alone, and its failure goes nowhere', async (t) => {
  const stalled = await setup(t, {})
  const { client, prefix } = stalled
  const id = 'h'.repeat(43)
  const key = sessionKey(prefix, id)
  await client.hset(key, 'not', 'a session')
  const cookie = `sid=${encodeURIComponent(sign(id, SECRET))}`
  // the read and what follows it both fail in Redis (WRONGTYPE), after the request got its 503
  await lateRequest(t, stalled, { url: '/read', headers: { cookie } })
  t.same(await client.hgetall(key), { not: 'a session' }, 'untouched')
  t.equal(await client.pttl(key), -1, 'and given no expiry')
})
