import { test } from 'tap'
import { buildApp, sessionCookie } from './helpers/app.js'
import { startRedis } from './helpers/redis-server.js'
import { LEASE, answering, appClient, read, warm } from './helpers/cache.js'

// The cache keeps a document no request can change: each request answered from it gets a copy of
// its own, so what one request changes in place and never saves is not what the next one reads.

type Data = Record<string, unknown>

test('a change made in place to a cached session and dropped by reload() reaches neither the cache nor the next request', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.kill())
  const { app } = await buildApp(t, {
    client: appClient(t, server.url),
    session: { cache: { lease: LEASE } },
    routes (app) {
      app.post('/spoil', async (req) => {
        (req.session.get('cart') as unknown[]).push('spoiled')
        ;(req.session.get('user') as Data).name = 'Mallory'
        const changed = req.session.toJSON()
        await req.session.reload()
        return { changed, after: req.session.toJSON() }
      })
    }
  })
  await answering(app)
  const start = { cart: ['a'], user: { name: 'Ann' } }
  const cookie = sessionCookie(await app.inject({ method: 'POST', url: '/write', payload: start }))
  t.same((await warm(app, cookie)).json().data, start, 'cached')

  const hits = app.sessions.stats().cacheHits
  const spoiled = await app.inject({ method: 'POST', url: '/spoil', headers: { cookie } })
  t.equal(app.sessions.stats().cacheHits, hits + 2, 'the load and the reload were both answered by the cache')
  t.same(spoiled.json().changed, { cart: ['a', 'spoiled'], user: { name: 'Mallory' } }, 'the request saw its own changes')
  t.same(spoiled.json().after, start, 'reload() gave it the cached session as it was')
  const next = await read(app, cookie)
  t.ok(next.hit, 'the next request is answered by the cache')
  t.same(next.res.json().data, start, 'as it was')
})
