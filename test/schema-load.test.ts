import { test, type Test } from 'tap'
import { Writable } from 'node:stream'
import { Type } from '@sinclair/typebox'
import { buildApp, connect, sessionCookie, setCookies, uniquePrefix, type TestApp, sessionKey } from './helpers/app.js'

const schema = Type.Object({
  user: Type.Object({ id: Type.Integer() }),
  views: Type.Integer({ minimum: 0 })
}, { additionalProperties: false })

interface LogLine { level: number, msg: string, plugin?: string }

interface LogCapture { stream: Writable, text: () => string }

/** A pino destination that keeps everything the app logs. */
function logCapture (): LogCapture {
  const raw: string[] = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, done) {
      raw.push(chunk.toString())
      done()
    }
  })
  return { stream, text: () => raw.join('') }
}

/**
 * Two apps on one Redis prefix: `before` stores sessions without a schema (the app as it was), `after`
 * loads them with one (the app after a deploy that changed what a session may hold).
 */
async function deploy (t: Test): Promise<{ before: TestApp, after: TestApp, logs: LogCapture }> {
  const client = await connect(t)
  const prefix = uniquePrefix()
  const logs = logCapture()
  const before = await buildApp(t, { client, session: { prefix } })
  const after = await buildApp(t, { client, session: { prefix, schema }, fastify: { logger: { level: 'warn', stream: logs.stream } } })
  return { before, after, logs }
}

function warnings (logs: LogCapture): LogLine[] {
  return logs.text().split('\n').filter(line => line !== '').map(line => JSON.parse(line) as LogLine).filter(line => line.level === 40)
}

test('stored data failing the schema is discarded: fresh session, stale key deleted, path logged without the data', async (t) => {
  const { before, after, logs } = await deploy(t)
  const stored = await before.app.inject({ method: 'POST', url: '/write', payload: { views: 'a-stored-secret-value' } })
  const oldId: string = stored.json().id
  t.equal(await before.client.exists(sessionKey(before.prefix, oldId)), 1)

  const res = await after.app.inject({ url: '/read', headers: { cookie: sessionCookie(stored) } })
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.equal(body.isNew, true, 'a fresh session')
  t.same(body.data, {})
  t.not(body.id, oldId, 'with a new id')
  t.equal(await after.client.exists(sessionKey(after.prefix, oldId)), 0, 'the stale key is deleted')
  t.notOk(setCookies(res).some(c => c.includes(oldId)), 'the old id is never sent again')

  const [warning, ...others] = warnings(logs)
  t.equal(others.length, 0)
  t.equal(warning.plugin, 'fastify-session-redis')
  t.match(warning.msg, /discarded a stored session: views: Expected integer/)
  t.notMatch(logs.text(), /a-stored-secret-value/, 'the data never reaches the log')
  t.notMatch(logs.text(), oldId, 'nor the session id')
})

test('the warning names a nested path', async (t) => {
  const { before, after, logs } = await deploy(t)
  const stored = await before.app.inject({ method: 'POST', url: '/write', payload: { user: { id: 'alice@example.com' } } })
  const res = await after.app.inject({ url: '/read', headers: { cookie: sessionCookie(stored) } })
  t.same(res.json().data, {})
  const [warning] = warnings(logs)
  t.match(warning.msg, /: user\.id: Expected integer$/)
  t.notMatch(logs.text(), /alice@example\.com/)
})

test('a stored key the schema does not declare is refused with additionalProperties: false', async (t) => {
  const { before, after, logs } = await deploy(t)
  const stored = await before.app.inject({ method: 'POST', url: '/write', payload: { views: 3, legacyCart: [1, 2] } })
  const res = await after.app.inject({ url: '/read', headers: { cookie: sessionCookie(stored) } })
  t.equal(res.json().isNew, true)
  t.match(warnings(logs)[0].msg, /: legacyCart: Unexpected property$/)
})

test('stored data that conforms is loaded, whichever declared keys it lacks', async (t) => {
  const { before, after, logs } = await deploy(t)
  const stored = await before.app.inject({ method: 'POST', url: '/write', payload: { views: 3 } })
  const res = await after.app.inject({ url: '/read', headers: { cookie: sessionCookie(stored) } })
  t.same(res.json(), { id: stored.json().id, isNew: false, data: { views: 3 } })
  t.same(warnings(logs), [])
})

test('a new session written after the discard is stored under the new id', async (t) => {
  const { before, after } = await deploy(t)
  const stored = await before.app.inject({ method: 'POST', url: '/write', payload: { views: -1 } })
  const res = await after.app.inject({ method: 'POST', url: '/write', headers: { cookie: sessionCookie(stored) }, payload: { views: 1 } })
  const newId: string = res.json().id
  t.not(newId, stored.json().id)
  const read = await after.app.inject({ url: '/read', headers: { cookie: sessionCookie(res) } })
  t.same(read.json(), { id: newId, isNew: false, data: { views: 1 } })
})

test('reload() discards stored data that no longer matches', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    session: { schema },
    routes: (app) => {
      app.post('/reload', async (req) => {
        // as if another process, still running without the schema, wrote this meanwhile
        const key = sessionKey(prefix, req.session.id)
        const doc = JSON.parse(await client.get(key) ?? 'null')
        await client.set(key, JSON.stringify({ ...doc, v: doc.v + 1, d: { views: 'lots' } }), 'KEEPTTL')
        await req.session.reload()
        return { isNew: req.session.isNew, data: req.session.toJSON(), stored: await client.exists(key) }
      })
    }
  })
  const first = await app.inject({ method: 'POST', url: '/write', payload: { views: 1 } })
  const res = await app.inject({ method: 'POST', url: '/reload', headers: { cookie: sessionCookie(first) } })
  t.same(res.json(), { isNew: true, data: {}, stored: 0 })
})
