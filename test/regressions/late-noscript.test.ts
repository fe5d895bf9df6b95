// A script call meets a Redis that does not know the script (NOSCRIPT: a restarted or flushed
// server) and resends it with EVAL. When that NOSCRIPT reply came after the request had already
// failed at its timeout, the resend still went out: a save the client was told failed could then
// be written after all, later than any other late command would.
import { test } from 'tap'
import { Redis } from 'ioredis'
import { buildApp, sessionCookie, sessionKey } from '../helpers/app.js'
import { startRedis } from '../helpers/redis-server.js'

const TIMEOUT = 200

async function evalCalls (admin: Redis): Promise<number> {
  const stats = String(await admin.info('commandstats'))
  return Number(/cmdstat_eval:calls=(\d+)/.exec(stats)?.[1] ?? 0)
}

test('a NOSCRIPT reply that comes after the timeout is not answered with the script: nothing is written', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.stop())
  const client = new Redis(server.url)
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  const admin = new Redis(server.url)
  t.teardown(() => { admin.disconnect() })
  const { app, prefix } = await buildApp(t, {
    client,
    session: { timeout: TIMEOUT },
    routes (app) {
      // loads first, then stalls Redis: the save's EVALSHA is what meets the stall
      app.post('/write-stalled', async (req) => {
        req.session.set('n', (req.session.get('n') as number) + 1)
        server.pause()
        return 'ok'
      })
    }
  })

  const created = await app.inject({ method: 'POST', url: '/write', payload: { n: 1 } })
  const cookie = sessionCookie(created)
  const key = sessionKey(prefix, created.json().id as string)
  const before = await admin.get(key)
  await admin.script('FLUSH')
  await admin.config('RESETSTAT')

  // the save's EVALSHA is sent while Redis is stalled; it answers NOSCRIPT once the request has failed
  let res
  try {
    res = await app.inject({ method: 'POST', url: '/write-stalled', headers: { cookie } })
  } finally {
    server.resume()
  }
  t.equal(res.statusCode, 503, 'the request failed at the timeout')
  t.equal(res.json().code, 'FST_REDIS_SESSION_STORE_UNAVAILABLE')
  // replies come in order on one connection: once these are back, a resend would have been sent and run
  await client.ping()
  await client.ping()
  t.equal(await evalCalls(admin), 0, 'no EVAL was sent after the timeout')
  t.equal(Number(/cmdstat_evalsha:calls=(\d+)/.exec(String(await admin.info('commandstats')))?.[1]), 1, 'the EVALSHA did reach Redis, late')
  t.equal(await admin.get(key), before, 'the session is as it was before the failed save')

  const again = await app.inject({ method: 'POST', url: '/write', headers: { cookie }, payload: { n: 3 } })
  t.equal(again.statusCode, 200, 'the next save loads the script as usual')
  t.equal(await evalCalls(admin), 1, 'with one EVAL')
  t.same(JSON.parse(await admin.get(key) as string).d, { n: 3 })
})
