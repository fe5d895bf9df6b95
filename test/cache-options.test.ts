import { test } from 'tap'
import Fastify from 'fastify'
import { Cluster, Redis } from 'ioredis'
import redisSession from '../lib/index.js'
import { resolveOptions } from '../lib/options.js'
import type { RedisSessionOptions } from '../types/index.js'
import { SECRET, buildApp, connect } from './helpers/app.js'
import { freePort, redisCli, startRedis, waitFor } from './helpers/redis-server.js'
import { Browser } from './helpers/scale.js'
import { LEASE, answering, appClient, invalidationClients, read, trackingClients, warm } from './helpers/cache.js'

async function registrationError (options: Record<string, unknown>): Promise<{ code?: string, message: string }> {
  const app = Fastify()
  try {
    await app.register(redisSession, options as unknown as RedisSessionOptions)
    await app.ready()
  } catch (err) {
    return err as { code?: string, message: string }
  } finally {
    await app.close()
  }
  throw new Error('registration succeeded')
}

/** A Redis client that never connects: options are checked before any command. */
function idle (): Redis {
  return new Redis({ lazyConnect: true })
}

test('cache: true takes the defaults; an object may set each; off unless given', async (t) => {
  const client = idle()
  t.equal(resolveOptions({ client, secret: SECRET }).cache, undefined, 'off by default')
  t.equal(resolveOptions({ client, secret: SECRET, cache: false }).cache, undefined, 'false: off')
  t.same(resolveOptions({ client, secret: SECRET, cache: true }).cache, { max: 10_000, lease: 500, refreshEvery: 8640 }, 'refreshEvery: a tenth of ttl')
  t.same(resolveOptions({ client, secret: SECRET, ttl: 60, cache: {} }).cache, { max: 10_000, lease: 500, refreshEvery: 6 })
  t.same(resolveOptions({ client, secret: SECRET, cache: { max: 5, lease: 100, refreshEvery: 0.5 } }).cache, { max: 5, lease: 100, refreshEvery: 0.5 })
})

test('a bad cache option fails at registration, naming it', async (t) => {
  const client = idle()
  const cases: Array<[string, unknown, string]> = [
    ['max 0', { max: 0 }, 'cache'],
    ['lease not an integer', { lease: 1.5 }, 'cache'],
    ['refreshEvery 0', { refreshEvery: 0 }, 'cache'],
    ['an unknown field', { size: 3 }, 'cache'],
    ['a string', 'yes', 'cache'],
    ['refreshEvery not below ttl', { refreshEvery: 60 }, 'cache.refreshEvery']
  ]
  for (const [name, cache, option] of cases) {
    const err = await registrationError({ client, secret: SECRET, ttl: 60, cache })
    t.equal(err.code, 'FST_REDIS_SESSION_INVALID_OPTION', `${name}: code`)
    t.match(err.message, `option "${option}`, `${name}: names ${option}`)
  }
})

test('a Cluster client with cache is refused at registration, saying why', async (t) => {
  const port = await freePort()
  const cluster = new Cluster([{ host: '127.0.0.1', port }], { lazyConnect: true })
  const err = await registrationError({ client: cluster, secret: SECRET, cache: true })
  t.equal(err.code, 'FST_REDIS_SESSION_CACHE_CLUSTER')
  t.match(err.message, /Cluster/)
  const { errors } = await import('../lib/index.js')
  t.equal(typeof errors.FST_REDIS_SESSION_CACHE_CLUSTER, 'function', 'exported with the others')
})

test('without cache: no connection of its own, no tracking, no cache counter moves', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.kill())
  const client = await connect(t, server.url)
  await client.ping()
  const before = (await redisCli(server.port, 'CLIENT', 'LIST')).split('\n').length
  const { app } = await buildApp(t, { client })
  const browser = new Browser()
  await browser.send(app, 'POST', '/write', { a: 1 })
  for (let i = 0; i < 5; i++) await app.inject({ url: '/read', headers: { cookie: browser.cookie! } })
  t.equal((await redisCli(server.port, 'CLIENT', 'LIST')).split('\n').length, before, 'no new connection')
  t.same(await trackingClients(server.port), [], 'no connection tracks keys')
  const { cacheHits, cacheMisses, cacheInvalidations, cacheLeaseExpiries } = app.sessions.stats()
  t.same([cacheHits, cacheMisses, cacheInvalidations, cacheLeaseExpiries], [0, 0, 0, 0])
})

test('with cache: two connections more, tracking and subscribed, closed with the app; the app\'s own client stays open', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.kill())
  const client = await connect(t, server.url)
  await client.ping()
  const before = (await redisCli(server.port, 'CLIENT', 'LIST')).split('\n').length
  const app = Fastify()
  await app.register(redisSession, { client, secret: SECRET, cache: { lease: LEASE } })
  app.get('/read', async (req) => ({ data: req.session.toJSON() }))
  app.post('/write', async (req) => { req.session.set('probe', 1); return 'ok' })
  await app.ready()
  await answering(app)
  const tracking = await trackingClients(server.port)
  t.equal(tracking.length, 1, 'one connection tracks keys: the data connection')
  t.notMatch(tracking[0], /flags=\S*B/, 'in default mode, not broadcast')
  const subscribed = await invalidationClients(server.port)
  t.equal(subscribed.length, 1, 'one connection hears the invalidations')
  t.match(tracking[0], new RegExp(`redir=${/^id=(\d+)/.exec(subscribed[0])![1]}\\b`), 'the data connection\'s invalidations go to it')
  t.equal((await redisCli(server.port, 'CLIENT', 'LIST')).split('\n').length, before + 2, 'two connections more')
  await app.close()
  await waitFor('the connections to go', async () => (await redisCli(server.port, 'CLIENT', 'LIST')).split('\n').length === before)
  t.equal(client.status, 'ready', 'the app\'s client stays open')
})

test('a plugin-owned connection with cache (redis: url): both connections close with the app', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.kill())
  const app = Fastify()
  await app.register(redisSession, { redis: server.url, secret: SECRET, cache: { lease: LEASE } })
  app.get('/read', async (req) => ({ data: req.session.toJSON() }))
  app.post('/write', async (req) => { req.session.set('probe', 1); return 'ok' })
  await app.ready()
  await answering(app)
  await app.close()
  await waitFor('every connection but redis-cli\'s to go', async () => (await redisCli(server.port, 'CLIENT', 'LIST')).split('\n').length === 1)
  t.pass('closed')
})

test('one warning when the cache stops answering, one info line when it answers again', async (t) => {
  const server = await startRedis()
  t.teardown(() => { server.resume(); return server.kill() })
  const lines: Array<{ level: number, msg: string }> = []
  const stream = { write: (line: string) => { lines.push(JSON.parse(line)) } }
  const { app } = await buildApp(t, { client: appClient(t, server.url), fastify: { logger: { level: 'info', stream } }, session: { cache: { lease: 1000 }, timeout: 300 } })
  const browser = new Browser()
  await browser.send(app, 'POST', '/write', { a: 1 })
  const cookie = browser.cookie!
  await warm(app, cookie)
  server.pause()
  await waitFor('the lease to run out', () => app.sessions.stats().cacheLeaseExpiries === 1)
  // reads meanwhile log no more warnings of the cache
  for (let i = 0; i < 3; i++) await read(app, cookie)
  server.resume()
  await warm(app, cookie)
  const cacheLines = lines.filter(line => line.msg.includes('session cache'))
  t.same(cacheLines.map(line => line.level), [40, 30], 'one warning, then one info line')
  t.match(cacheLines[0].msg, 'stopped answering')
  t.match(cacheLines[1].msg, 'answers again')
})
