import { test } from 'tap'
import type { Redis } from 'ioredis'
import { buildApp, sessionCookie } from './helpers/app.js'
import { startRedis } from './helpers/redis-server.js'
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
