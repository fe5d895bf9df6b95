// An async route that calls reply.redirect() without returning the reply makes Fastify run onSend
// twice while the save is in flight. The second pass used to go out first, without the cookie,
// and the first then threw ERR_HTTP_HEADERS_SENT inside the save batch, so later requests of the
// same batch never got an answer.
import { test } from 'tap'
import { SessionWriter } from '../../lib/redis/writer.js'
import { SessionStore } from '../../lib/redis/store.js'
import { newStats } from '../../lib/model/stats.js'
import { newDocument } from '../../lib/model/document.js'
import { buildApp, connect, sessionCookie, uniquePrefix } from '../helpers/app.js'

const PARALLEL = 200

test('a redirect sent without returning the reply carries the cookie, and the change lands', async (t) => {
  const { app } = await buildApp(t, {
    routes: (app) => {
      app.post('/login', async (req, reply) => {
        req.session.set('user', 'ann')
        reply.redirect('/read')
      })
    }
  })
  const login = await app.inject({ method: 'POST', url: '/login' })
  t.equal(login.statusCode, 302)
  t.equal(login.headers.location, '/read')
  const read = await app.inject({ url: '/read', headers: { cookie: sessionCookie(login) } })
  t.same(read.json().data, { user: 'ann' })
})

test(`${PARALLEL} parallel such requests on one session over HTTP: each gets one response, and every change lands`, async (t) => {
  const { app } = await buildApp(t, {
    routes: (app) => {
      app.post('/count', async (req, reply) => {
        req.session.increment('n')
        reply.redirect('/read')
      })
    }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const created = await app.inject({ method: 'POST', url: '/write', payload: { n: 0 } })
  const cookie = sessionCookie(created)
  const responses = await Promise.all(Array.from({ length: PARALLEL }, async () => {
    const res = await fetch(`http://127.0.0.1:${port}/count`, { method: 'POST', headers: { cookie }, redirect: 'manual', signal: AbortSignal.timeout(20_000) })
    await res.arrayBuffer()
    return res.status
  }))
  t.equal(responses.filter(status => status === 302).length, PARALLEL, 'every request answered 302')
  const read = await app.inject({ url: '/read', headers: { cookie } })
  t.equal(read.json().data.n, PARALLEL, 'no increment lost')
})

test('a waiter whose callback throws does not keep the rest of its batch from their outcome', async (t) => {
  const client = await connect(t)
  const store = new SessionStore({ client, prefix: uniquePrefix(), timeout: 2000, stats: newStats() })
  const writer = new SessionWriter({ store, ttl: 60, timeout: 2000, maxBytes: 65536, stats: newStats(), schema: undefined })
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => { warnings.push(warning) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })

  const id = 'a'.repeat(43)
  const outcomes: string[] = []
  const doc = newDocument(Date.now(), 600)
  // the first save is in flight while the next three wait: they are committed as one batch
  writer.write(id, { base: 0, doc, ops: [] }, () => { outcomes.push('first') })
  const batch = new Promise<void>(resolve => {
    const after = { base: 0, doc, ops: [{ kind: 'set' as const, key: 'k', value: 1 }] }
    writer.write(id, after, () => { outcomes.push('thrower'); throw new Error('a continuation that throws') })
    writer.write(id, after, () => { outcomes.push('second') })
    writer.write(id, after, () => { outcomes.push('third'); resolve() })
  })
  await batch
  t.same(outcomes, ['first', 'thrower', 'second', 'third'])
  await new Promise(resolve => setImmediate(resolve))
  t.match(warnings.map(w => w.message), ['a continuation that throws'], 'reported as a process warning')
})
