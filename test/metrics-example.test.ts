import { test } from 'tap'
import { Signer } from '@fastify/cookie'
import { buildApp, sessionCookie, SECRET, sessionKey } from './helpers/app.js'
import { sessionMetrics } from '../examples/metrics.js'

/** `name{labels} value` lines of a Prometheus text exposition, by `name{labels}`. */
function samples (text: string): Map<string, number> {
  const found = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const at = line.lastIndexOf(' ')
    found.set(line.slice(0, at), Number(line.slice(at + 1)))
  }
  return found
}

test('examples/metrics.ts reports the counts of real requests', async (t) => {
  const { app, client, prefix } = await buildApp(t, { routes: (app) => { sessionMetrics(app) } })
  const created = await app.inject({ method: 'POST', url: '/increment' })
  const cookie = sessionCookie(created)
  for (let i = 0; i < 3; i++) await app.inject({ method: 'POST', url: '/increment', headers: { cookie } })
  await app.inject({ url: '/read', headers: { cookie } })
  await app.inject({ url: '/read', headers: { cookie: 'sid=forged.value' } })
  await app.inject({ url: '/read', headers: { cookie: `sid=${new Signer(SECRET).sign('M'.repeat(43))}` } })
  const big = 'x'.repeat(70_000)
  t.equal((await app.inject({ method: 'POST', url: '/write', headers: { cookie }, payload: { big } })).statusCode, 507)

  const res = await app.inject('/metrics')
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  t.equal(res.headers['set-cookie'], undefined, 'the metrics route has no session')
  const metrics = samples(res.body)
  const expected: Record<string, number> = {
    'session_stats_total{kind="loaded"}': 5,
    'session_stats_total{kind="created"}': 1,
    'session_stats_total{kind="saved"}': 4,
    'session_stats_total{kind="rejectedCookies"}': 1,
    'session_stats_total{kind="conflicts"}': 0,
    'session_stats_total{kind="storeErrors"}': 0,
    'session_events_total{event="load"}': 6,
    'session_events_total{event="save"}': 5,
    'session_events_total{event="create"}': 1,
    'session_events_total{event="expired"}': 1,
    'session_load_duration_seconds_count{outcome="found"}': 5,
    'session_load_duration_seconds_count{outcome="missing"}': 1,
    'session_save_duration_seconds_count{outcome="saved"}': 4,
    'session_save_duration_seconds_count{outcome="FST_REDIS_SESSION_TOO_LARGE"}': 1,
    session_saved_bytes_count: 4,
    'session_expired_total{reason="missing"}': 1
  }
  for (const [name, value] of Object.entries(expected)) t.equal(metrics.get(name), value, name)
  const stored = Buffer.byteLength(await client.get(sessionKey(prefix, (await app.inject({ url: '/read', headers: { cookie } })).json().id)) as string)
  t.ok((metrics.get('session_saved_bytes_sum') as number) >= stored, 'sizes of the writes')

  await app.close()
  t.equal(samples(await (await import('prom-client')).register.metrics()).size, 0, 'nothing went to prom-client\'s global registry')
})
