import { test, type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { Writable } from 'node:stream'
import { sign } from '@fastify/cookie'
import { Redis } from 'ioredis'
import type { FastifyInstance } from 'fastify'
import { SessionStore } from '../../lib/redis/store.js'
import { STALLED_AFTER } from '../../lib/redis/outage.js'
import { newStats } from '../../lib/model/stats.js'
import { SECRET, buildApp, sessionCookie } from '../helpers/app.js'
import { startRedis, waitFor } from '../helpers/redis-server.js'

// While Redis was known to be down, every request that needed a session still sent its command and
// waited the whole `timeout` for it: under load, requests piled up in memory by the thousand.

const UNAVAILABLE = 'FST_REDIS_SESSION_STORE_UNAVAILABLE'

/** A client with ioredis's default retry and offline-queue settings, as an app would have. */
function appClient (t: Test, url: string): Redis {
  const client = new Redis(url)
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  return client
}

/** Commands ioredis holds for a connection that is not there. */
function offlineQueued (client: Redis): number {
  return (client as unknown as { offlineQueue: { length: number } }).offlineQueue.length
}

function unknownSessionCookie (): string {
  return `sid=${encodeURIComponent(sign(randomBytes(32).toString('base64url'), SECRET))}`
}

async function statuses (app: FastifyInstance, cookie: string, count: number): Promise<Array<[number, string]>> {
  const answers = await Promise.all(Array.from({ length: count }, () => app.inject({ url: '/read', headers: { cookie } })))
  return answers.map(res => [res.statusCode, res.json().code])
}

test('while the connection is lost, requests that need a session fail at once and queue nothing; the first after it is back succeeds', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.stop())
  const client = appClient(t, server.url)
  // a wait for Redis would last a minute: longer than this test may run
  const { app } = await buildApp(t, { client, session: { timeout: 60_000 } })
  const created = await app.inject({ method: 'POST', url: '/write', payload: { user: 'alice' } })
  const cookie = sessionCookie(created)
  await server.kill()
  await waitFor('the client to see the connection lost', () => client.status === 'reconnecting')
  let answered = 0
  const known = statuses(app, cookie, 20).finally(() => { answered += 20 })
  const unknown = statuses(app, unknownSessionCookie(), 5).finally(() => { answered += 5 })
  // bounds a hang: a request that waited for Redis would wait a minute
  await waitFor('every request to be answered', () => answered === 25, { timeout: 10_000 })
  t.equal(offlineQueued(client), 0, 'no command waits for the lost connection')
  t.same(await known, Array(20).fill([503, UNAVAILABLE]), 'every read: the coded 503')
  t.same(await unknown, Array(5).fill([503, UNAVAILABLE]), 'and with a cookie Redis may not know')
  t.equal(app.sessions.stats().storeErrors, 25, 'each counted as a store error')
  await server.restart()
  await waitFor('the client to be ready again', () => client.status === 'ready', { timeout: 10_000 })
  const read = await app.inject({ url: '/read', headers: { cookie } })
  t.equal(read.statusCode, 200, 'no restart needed')
})

test('a stalled Redis: after a run of commands that ran out of time nothing more is sent until Redis answers again', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.stop())
  const client = appClient(t, server.url)
  const logs: Array<{ level: number, msg: string }> = []
  const stream = new Writable({
    write (chunk: Buffer, _enc, next) {
      logs.push(JSON.parse(chunk.toString()))
      next()
    }
  })
  const { app } = await buildApp(t, { client, session: { timeout: 300 }, fastify: { logger: { level: 'info', stream } } })
  const created = await app.inject({ method: 'POST', url: '/write', payload: { user: 'alice' } })
  const cookie = sessionCookie(created)
  server.pause()
  try {
    for (let i = 0; i < STALLED_AFTER; i++) {
      t.equal((await app.inject({ url: '/read', headers: { cookie } })).statusCode, 503, `read ${i + 1} ran out of time`)
    }
    const sent = client.commandQueue.length
    // each timed-out read also has the script that bounds its late refresh queued behind it
    t.equal(sent, 2 * STALLED_AFTER, 'each of them was sent and waits for its reply')
    t.same(await statuses(app, cookie, 20), Array(20).fill([503, UNAVAILABLE]), 'later reads: the coded 503')
    // one may go out to see whether Redis is back, if a whole timeout passed meanwhile
    t.ok(client.commandQueue.length <= sent + 1, 'none of them was sent, but for at most one probe')
    const warned = logs.filter(line => line.level === 40 && line.msg.includes('in a row'))
    t.equal(warned.length, 1, 'one warning says why requests fail at once')
  } finally {
    server.resume()
  }
  await waitFor('the stalled replies', () => client.commandQueue.length === 0)
  const read = await app.inject({ url: '/read', headers: { cookie } })
  t.same(read.json().data, { user: 'alice' }, 'the first request after the replies came is served')
  t.ok(logs.some(line => line.level === 30 && line.msg.includes('answers again')), 'and the log says Redis is back')
})

test('the store on its own: a run of timeouts stops the sending, a reply starts it again', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.stop())
  const client = appClient(t, server.url)
  const store = new SessionStore({ client, prefix: 'outage:', timeout: 100, stats: newStats() })
  t.equal(await store.load('a'.repeat(22), Date.now(), 60, true), null)
  server.pause()
  try {
    for (let i = 0; i < STALLED_AFTER; i++) await t.rejects(store.load('a'.repeat(22), Date.now(), 60, true), { code: UNAVAILABLE })
    const sent = client.commandQueue.length
    await t.rejects(store.remove('a'.repeat(22)), { code: UNAVAILABLE })
    t.equal(client.commandQueue.length, sent, 'the remove was not sent')
    // once a whole timeout has passed, one command goes out to see whether Redis is back
    await new Promise(resolve => setTimeout(resolve, 150))
    const probe = store.remove('a'.repeat(22))
    const next = store.remove('a'.repeat(22))
    t.equal(client.commandQueue.length, sent + 1, 'the first is sent, the next one not')
    await t.rejects(next, { code: UNAVAILABLE })
    await t.rejects(probe, { code: UNAVAILABLE }, 'the probe ran out of time too')
  } finally {
    server.resume()
  }
  await waitFor('the stalled replies', () => client.commandQueue.length === 0)
  t.equal(await store.load('a'.repeat(22), Date.now(), 60, true), null, 'sent again once Redis answered')
})
