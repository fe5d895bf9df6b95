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

test('tracking (default mode, NOLOOP): a change to a key the data connection read is heard, unless the data connection made it; a key not read since costs nothing', async (t) => {
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
  const info = await data.call('CLIENT', 'TRACKINGINFO') as [string, string[], string, number]
  t.same(info[1], ['on', 'noloop'], 'tracking on, in default mode, without loop')
  const other = appClient(t, server.url)
  // a client of the test's changes a key: heard after anything sent before it (one socket, in order)
  const changed = async (key: string): Promise<void> => {
    await other.set(`own:${key}`, '1')
    await waitFor(`the change of ${key}`, () => heard.includes(key))
  }
  await other.mset('own:a', '0', 'own:b', '0', 'own:c', '0', 'own:d', '0', 'own:e', '0')

  // read (GET, a script's GET): tracked
  await data.get('own:a')
  await data.eval("return redis.call('GET', KEYS[1])", 1, 'own:b')
  // a write (GETEX) reads nothing
  await data.getex('own:c', 'PX', 60_000)
  await other.set('own:c', '1')
  await changed('a')
  await changed('b')
  t.same(heard, ['a', 'b'], 'changes to the keys read are heard; to the key only GETEX touched, not')

  // read, then changed by the data connection itself (a plain command, a script): not sent back, and no longer tracked
  await data.get('own:d')
  await data.get('own:e')
  await data.set('own:d', '2')
  await data.eval("return redis.call('SET', KEYS[1], '2')", 1, 'own:e')
  await other.set('own:d', '3')
  await other.set('own:e', '3')
  await data.get('own:sentinel')
  await changed('sentinel')
  t.same(heard, ['a', 'b', 'sentinel'], 'its own changes are not sent back, and untrack the key')
})
