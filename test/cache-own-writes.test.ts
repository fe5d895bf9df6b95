import { test } from 'tap'
import type { Redis } from 'ioredis'
import { buildApp, sessionCookie } from './helpers/app.js'
import { startRedis, waitFor } from './helpers/redis-server.js'
import Fastify from 'fastify'
import { Invalidations } from '../lib/redis/invalidations.js'
import { LocalCache } from '../lib/model/local-cache.js'
import { newStats } from '../lib/model/stats.js'
import { LEASE, answering, appClient, read } from './helpers/cache.js'

// A session this instance just saved is most likely written again by its next request: that load
// is the rolling read (GETEX) it is without the cache, with nothing kept; the load after it is the
// plain read the cache keeps, and the next one a hit.

async function calls (redis: Redis, command: string): Promise<number> {
  const stats = String(await redis.info('commandstats'))
  return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(stats)?.[1] ?? 0)
}

test('after a save here, the next load is a GETEX that keeps nothing; then a plain read is kept and hit', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.kill())
  const { app } = await buildApp(t, { client: appClient(t, server.url), session: { cache: { lease: LEASE } } })
  const admin = appClient(t, server.url)
  await answering(app)
  const cookie = sessionCookie(await app.inject({ method: 'POST', url: '/write', payload: { n: 1 } }))
  await admin.config('RESETSTAT')

  const afterSave = await read(app, cookie)
  t.notOk(afterSave.hit, 'the load after the save: not from the cache')
  t.same(afterSave.res.json().data, { n: 1 })
  t.equal(await calls(admin, 'getex'), 1, 'a rolling read')
  t.equal(await calls(admin, 'evalsha'), 0, 'not the plain read the cache keeps')

  const next = await read(app, cookie)
  t.notOk(next.hit, 'the next load: not from the cache either (the GETEX kept nothing)')
  t.equal(await calls(admin, 'evalsha'), 1, 'the plain read, kept')
  const third = await read(app, cookie)
  t.ok(third.hit, 'then a hit')
  t.same(third.res.json().data, { n: 1 })
})

test('the data connection\'s own changes are not sent back to it (NOLOOP), but those of its Lua scripts and of every other client are', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.kill())
  const stats = newStats()
  const cache = new LocalCache({ max: 10, lease: LEASE, stats })
  const heard: string[] = []
  const invalidated = cache.invalidated.bind(cache)
  cache.invalidated = (id) => { heard.push(id); invalidated(id) }
  const invalidations = new Invalidations({ client: appClient(t, server.url), prefix: 'own:', cache, lease: LEASE, log: Fastify().log, timeout: 1000 })
  invalidations.data.on('error', () => {})
  t.teardown(() => invalidations.close())
  invalidations.start()
  await waitFor('the cache to answer', () => cache.answering())
  const { data } = invalidations
  const info = await data.call('CLIENT', 'TRACKINGINFO') as [string, string[], string, number, string, string[]]
  t.same([info[1], info[5]], [['on', 'bcast', 'noloop'], ['own:']], 'tracking on, for the prefix, in broadcast mode, without loop')

  await data.set('own:a', '1')
  await data.getex('own:a', 'PX', 60_000)
  await data.del('own:a')
  // a client of the test's: heard, after anything the data connection changed before it (one socket, in order)
  const other = appClient(t, server.url)
  await other.set('own:b', '1')
  await waitFor('the other client\'s change', () => heard.includes('b'))
  t.same(heard, ['b'], 'SET, GETEX and DEL on the data connection: not sent back')

  await data.eval("redis.call('SET', KEYS[1], '1')", 1, 'own:scripted')
  await other.set('own:c', '1')
  await waitFor('the other client\'s change', () => heard.includes('c'))
  t.same(heard, ['b', 'scripted', 'c'], 'a change a Lua script makes is sent back: Redis does not tell whose script it is')
})
