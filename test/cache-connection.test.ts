import { test, type Test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import redisSession from '../lib/index.js'
import { SECRET, buildApp, sessionKey } from './helpers/app.js'
import { Redis } from 'ioredis'
import { Redis as RedisV5 } from 'ioredis-5'
import type { FastifyInstance } from 'fastify'
import { freePort, redisCli, startRedis, waitFor } from './helpers/redis-server.js'
import { Browser } from './helpers/scale.js'
import { LEASE, TrackingStall, answering, invalidationIds, read, trackingClients, warm } from './helpers/cache.js'
import { Invalidations } from '../lib/redis/invalidations.js'
import { LocalCache } from '../lib/model/local-cache.js'
import { newStats } from '../lib/model/stats.js'

// The cache's connection: whatever happens to it, the app goes on (reads go to Redis), nothing
// crashes, and the log says what is wrong once.

interface Logged { level: number, msg: string }

function logCapture (): { lines: Logged[], stream: { write: (line: string) => void } } {
  const lines: Logged[] = []
  return { lines, stream: { write: (line: string) => { lines.push(JSON.parse(line)) } } }
}

test('tracking refused (an ACL user without CLIENT): reads go to Redis, one warning says why', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.kill())
  await redisCli(server.port, 'ACL', 'SETUSER', 'limited', 'on', 'nopass', '~*', '&*', '+@all', '-client')
  const client = new Redis({ port: server.port, host: '127.0.0.1', username: 'limited', maxRetriesPerRequest: 1 })
  t.teardown(() => { client.disconnect() })
  const { lines, stream } = logCapture()
  const { app } = await buildApp(t, { client, fastify: { logger: { level: 'warn', stream } }, session: { cache: { lease: LEASE } } })
  await waitFor('the warning', () => lines.some(line => line.msg.includes('cannot turn on tracking')))
  const browser = new Browser()
  await browser.send(app, 'POST', '/write', { a: 1 })
  for (let i = 0; i < 3; i++) {
    const seen = await read(app, browser.cookie!)
    t.notOk(seen.hit, 'not answered from a cache that hears nothing')
    t.same(seen.res.json().data, { a: 1 })
  }
  t.equal(lines.filter(line => line.msg.includes('session cache')).length, 1, 'one warning')
  t.equal(lines[0].level, 40)
})

test('Redis unreachable at start: the app starts, requests fail with 503 as without the cache; once Redis is up the cache answers', async (t) => {
  const port = await freePort()
  const client = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, retryStrategy: () => 50 })
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  const { lines, stream } = logCapture()
  const { app } = await buildApp(t, { client, fastify: { logger: { level: 'info', stream } }, session: { cache: { lease: LEASE }, timeout: 300 } })
  const failed = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  t.equal(failed.statusCode, 503)
  await waitFor('the warning', () => lines.some(line => line.msg.includes('session cache\'s connection')))
  const server = await (await import('../tools/redis-server.js')).startRedisServer({ port })
  t.teardown(() => server.kill())
  await waitFor('the client to be ready', () => client.status === 'ready')
  await answering(app)
  const cacheLines = lines.filter(line => line.msg.includes('session cache\'s connection'))
  t.same(cacheLines.map(line => line.level), [40, 30], 'one warning, then one info line when it is back')
})

/** The id of the connection subscribed to the invalidations (the cache's invalidation connection), if any. */
async function subscriberId (port: number): Promise<string | undefined> {
  return (await invalidationIds(port))[0]
}

async function keyPrefixed (t: Test, a: Redis, b: Redis): Promise<{ a: FastifyInstance, b: FastifyInstance, prefix: string }> {
  const one = await buildApp(t, { client: a, session: { cache: { lease: LEASE } } })
  const two = await buildApp(t, { client: b, session: { cache: { lease: LEASE }, prefix: one.prefix } })
  await Promise.all([answering(one.app), answering(two.app)])
  return { a: one.app, b: two.app, prefix: one.prefix }
}

test('a client with a keyPrefix of its own: the keys Redis names are matched to sessions', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.kill())
  const connect = (): Redis => {
    const client = new Redis(server.url, { keyPrefix: 'app1:', maxRetriesPerRequest: 1 })
    t.teardown(() => { client.disconnect() })
    return client
  }
  const { a, b, prefix } = await keyPrefixed(t, connect(), connect())
  const { id, cookie } = await a.sessions.create({ n: 1 })
  await warm(b, cookie)
  const before = b.sessions.stats().cacheInvalidations
  await a.inject({ method: 'POST', url: '/write', headers: { cookie }, payload: { n: 2 } })
  await waitFor('the invalidation', () => b.sessions.stats().cacheInvalidations > before)
  t.same((await read(b, cookie)).res.json().data, { n: 2 }, 'seen')
  t.equal(await redisCli(server.port, 'EXISTS', `app1:${sessionKey(prefix, id)}`), '1', 'the key carries both prefixes')
})

test('ioredis 5: the same invalidations and lease', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.kill())
  const connect = (): Redis => {
    const client = new RedisV5(server.url, { maxRetriesPerRequest: 1 }) as unknown as Redis
    t.teardown(() => { client.disconnect() })
    return client
  }
  const { a, b } = await keyPrefixed(t, connect(), connect())
  t.equal((await trackingClients(server.port)).length, 2)
  const { cookie } = await a.sessions.create({ n: 1 })
  await warm(b, cookie)
  const before = b.sessions.stats().cacheInvalidations
  await a.inject({ method: 'POST', url: '/write', headers: { cookie }, payload: { n: 2 } })
  await waitFor('the invalidation', () => b.sessions.stats().cacheInvalidations > before)
  t.same((await read(b, cookie)).res.json().data, { n: 2 }, 'seen')
})

test('closing the app while Redis is stopped does not wait for it; the PING in flight is given up', async (t) => {
  const server = await startRedis()
  t.teardown(() => { server.resume(); return server.kill() })
  const client = new Redis(server.url, { maxRetriesPerRequest: 1 })
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  const app = Fastify()
  await app.register(redisSession, { client, secret: SECRET, cache: { lease: LEASE } })
  app.post('/write', async (req) => { req.session.set('a', 1); return 'ok' })
  app.get('/read', async (req) => ({ data: req.session.toJSON() }))
  await app.ready()
  await answering(app)
  server.pause()
  // a PING goes out every quarter of the lease: once the lease ran out, one is in flight
  await waitFor('the lease to run out', () => app.sessions.stats().cacheLeaseExpiries === 1)
  await app.close()
  t.pass('closed')
})

test('the data connection on another server than the invalidation connection (one followed a failover first): the cache stops answering', async (t) => {
  const first = await startRedis()
  const second = await startRedis()
  t.teardown(() => Promise.all([first.kill(), second.kill()]))
  const client = new Redis(first.url, { maxRetriesPerRequest: 1, lazyConnect: true })
  const stats = newStats()
  const cache = new LocalCache({ max: 10, lease: LEASE, stats })
  const invalidations = new Invalidations({ client, prefix: 'moved:', cache, lease: LEASE, log: Fastify().log, timeout: 1000 })
  invalidations.data.on('error', () => {})
  t.teardown(() => invalidations.close())
  invalidations.start()
  await waitFor('the cache to answer', () => cache.answering())
  // the data connection moves; the invalidation connection stays where it was
  invalidations.data.options.port = second.port
  invalidations.data.disconnect(true)
  await waitFor('the data connection on the second server', () => invalidations.data.status === 'ready' && invalidations.data.stream.remotePort === second.port)
  // PINGs go out every quarter of the lease, on both connections: several rounds came back meanwhile
  await sleep(2 * LEASE)
  t.notOk(cache.answering(), 'not answering')
  t.ok(stats.cacheLeaseExpiries >= 1, 'the stop is counted')
})

test('a plugin-owned client (redis: url) with cache: the cache\'s two connections carry everything, and the cache answers', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.kill())
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(redisSession, { redis: server.url, secret: SECRET, cache: { lease: LEASE } })
  app.post('/write', async (req) => { req.session.set('probe', 1); return 'ok' })
  app.get('/read', async (req) => ({ data: req.session.toJSON() }))
  await app.ready()
  await answering(app)
  const lines = (await redisCli(server.port, 'CLIENT', 'LIST')).trim().split('\n')
  t.equal(lines.length, 3, 'the data connection, the invalidation connection and redis-cli: the client made from the URL never connects')
})

test('the invalidation connection lost while it subscribes: the setup of the connection that replaced it wins, and the cache answers', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.kill())
  const proxy = await TrackingStall.start(t, server.port)
  t.teardown(() => { proxy.resume() })
  // the reply to SUBSCRIBE is held back: the setup waits there
  proxy.stall()
  const cache = new LocalCache({ max: 10, lease: LEASE, stats: newStats() })
  const invalidations = new Invalidations({ client: new Redis(proxy.url, { lazyConnect: true }), prefix: 'lost:', cache, lease: LEASE, log: Fastify().log, timeout: 1000 })
  invalidations.data.on('error', () => {})
  t.teardown(() => invalidations.close())
  invalidations.start()
  await waitFor('SUBSCRIBE run, its reply held', async () => await subscriberId(server.port) !== undefined)
  await redisCli(server.port, 'CLIENT', 'KILL', 'ID', (await subscriberId(server.port))!)
  // the first setup fails with its connection; ioredis reconnects, and the new connection sets itself up
  await waitFor('the new connection subscribed', async () => await subscriberId(server.port) !== undefined)
  proxy.resume()
  await waitFor('the cache to answer', () => cache.answering())
  const tracking = await trackingClients(server.port)
  t.equal(tracking.length, 1)
  t.match(tracking[0], new RegExp(`redir=${(await subscriberId(server.port))!}\\b`), 'tracking sends to the connection that is there')
})

test('the invalidation connection lost while its PING waits for a reply: that round is given up, and the cache answers on the next connection', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.kill())
  const proxy = await TrackingStall.start(t, server.port)
  t.teardown(() => { proxy.resume() })
  const cache = new LocalCache({ max: 10, lease: LEASE, stats: newStats() })
  const invalidations = new Invalidations({ client: new Redis(proxy.url, { lazyConnect: true }), prefix: 'ping:', cache, lease: LEASE, log: Fastify().log, timeout: 1000 })
  t.teardown(() => invalidations.close())
  invalidations.start()
  await waitFor('the cache to answer', () => cache.answering())
  // the PONGs are held back: a round waits, and the lease runs out
  proxy.stall()
  await waitFor('the lease to run out', () => !cache.answering())
  const first = (await subscriberId(server.port))!
  await redisCli(server.port, 'CLIENT', 'KILL', 'ID', first)
  // ioredis resends nothing on this connection, and never settles the PING it was waiting for
  await waitFor('the new connection subscribed', async () => ![undefined, first].includes(await subscriberId(server.port)))
  proxy.resume()
  await waitFor('the cache to answer', () => cache.answering())
  t.ok(cache.answering(), 'a PING that never settles does not hold up the rounds after it')
})
