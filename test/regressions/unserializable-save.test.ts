import { test } from 'tap'
import { Writable } from 'node:stream'
import { Redis } from 'ioredis'
import { Gate } from '../helpers/gate.js'
import { buildApp, sessionCookie, sessionKey, sharedRedisUrl } from '../helpers/app.js'

// A value that JSON could hold when set() checked it, then changed in place into one it cannot:
// the writer threw inside its commit, the batch was never settled, and the request (with every
// request of the same session batched with it) never answered.

/** Changes `value` in place into something JSON.stringify throws on. */
const spoilers: Record<string, (value: Record<string, unknown>) => void> = {
  'a cycle': (value) => { value.self = value },
  'a BigInt': (value) => { value.big = 10n },
  'a throwing getter': (value) => {
    Object.defineProperty(value, 'boom', { enumerable: true, get () { throw new Error('no') } })
  },
  'a throwing toJSON': (value) => { value.inner = { toJSON () { throw new Error('no') } } },
  'a getter throwing a string': (value) => {
    Object.defineProperty(value, 'boom', { enumerable: true, get () { throw 'no' } }) // eslint-disable-line no-throw-literal
  },
  'nesting 100,000 levels deep': (value) => {
    let deep: unknown = 1
    for (let i = 0; i < 100_000; i++) deep = [deep]
    value.deep = deep
  }
}

/** Lines the app logged, parsed. */
function logSink (): { stream: Writable, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line))
      callback()
    }
  })
  return { stream, lines }
}

test('a value changed in place into one JSON cannot hold: a coded 500, logged, the stored session unchanged', { timeout: 20_000 }, async (t) => {
  const sink = logSink()
  const { app, client, prefix } = await buildApp(t, {
    fastify: { logger: { level: 'error', stream: sink.stream } },
    routes (app) {
      app.post('/spoil', async (req) => {
        const { kind } = req.body as { kind: string }
        const value: Record<string, unknown> = { fine: true }
        req.session.set('value', value)
        if (kind !== 'once') spoilers[kind](value)
        else {
          let calls = 0
          Object.defineProperty(value, 'flaky', { enumerable: true, get () { if (calls++ === 0) throw new Error('once'); return 1 } })
        }
        return 'stored'
      })
    }
  })
  const created = await app.inject({ method: 'POST', url: '/write', payload: { keep: 'me' } })
  const cookie = sessionCookie(created)
  const key = sessionKey(prefix, created.json().id)
  const stored = await client.get(key)
  for (const kind of Object.keys(spoilers)) {
    const res = await app.inject({ method: 'POST', url: '/spoil', headers: { cookie }, payload: { kind } })
    t.equal(res.statusCode, 500, `${kind}: answered 500`)
    t.equal(res.json().code, 'FST_REDIS_SESSION_INVALID_VALUE', `${kind}: the code`)
    t.match(res.json().message, /"value"/, `${kind}: the key is named`)
    t.equal(await client.get(key), stored, `${kind}: the stored session is as it was`)

    const fresh = await app.inject({ method: 'POST', url: '/spoil', payload: { kind } })
    t.equal(fresh.json().code, 'FST_REDIS_SESSION_INVALID_VALUE', `${kind}: the code for a new session`)
    t.equal(fresh.headers['set-cookie'], undefined, `${kind}: no cookie for a session that was not stored`)
  }
  // a getter that throws only the first time: the failing key cannot be told afterwards
  const once = await app.inject({ method: 'POST', url: '/spoil', headers: { cookie }, payload: { kind: 'once' } })
  t.equal(once.json().code, 'FST_REDIS_SESSION_INVALID_VALUE', 'a value that failed once: the code')
  t.match(once.json().message, /"\(data\)"/, 'a value that failed once: the data is named')
  t.equal(await client.get(key), stored, 'a value that failed once: the stored session is as it was')
  const logged = sink.lines.filter(line => (line.err as { code?: string } | undefined)?.code === 'FST_REDIS_SESSION_INVALID_VALUE')
  t.equal(logged.length, Object.keys(spoilers).length * 2 + 1, 'each failure is logged')
  const read = await app.inject({ url: '/read', headers: { cookie } })
  t.same(read.json().data, { keep: 'me' }, 'the session still works')
})

test('one spoiled value among parallel saves of a session fails alone; the others are saved', { timeout: 20_000 }, async (t) => {
  const gate = new Gate()
  const { app, client, prefix } = await buildApp(t, {
    routes (app) {
      app.post('/count', async (req) => {
        req.session.increment('n')
        await gate.hold()
        return 'ok'
      })
      app.post('/spoil', async (req) => {
        const value: Record<string, unknown> = {}
        req.session.set('bad', value)
        await gate.hold()
        // after the others: it joins the batch that waits while the first save is in flight
        await new Promise(resolve => setImmediate(resolve))
        value.self = value
        return 'stored'
      })
    }
  })
  const created = await app.inject({ method: 'POST', url: '/write', payload: { keep: 'me' } })
  const cookie = sessionCookie(created)
  const key = sessionKey(prefix, created.json().id)
  const counts = 6
  const pending = [
    ...Array.from({ length: counts }, () => app.inject({ method: 'POST', url: '/count', headers: { cookie } })),
    app.inject({ method: 'POST', url: '/spoil', headers: { cookie } })
  ]
  await gate.reached(counts + 1)
  // writes wait in Redis for a moment, so the saves after the first queue up behind it and are merged
  const pauser = new Redis(await sharedRedisUrl())
  t.teardown(() => { pauser.disconnect() })
  await pauser.call('CLIENT', 'PAUSE', '300', 'WRITE')
  gate.open()
  const results = await Promise.all(pending)
  t.same(results.map(r => r.statusCode), [...Array(counts).fill(200), 500], 'every request answers')
  t.equal(results[counts].json().code, 'FST_REDIS_SESSION_INVALID_VALUE')
  const data = JSON.parse((await client.get(key))!).d
  t.same(data, { keep: 'me', n: counts }, 'every increment landed, the spoiled value did not')
})

test('a detached session whose value was spoiled: save() rejects with the code, and can save again once fixed', { timeout: 20_000 }, async (t) => {
  const { app, client, prefix } = await buildApp(t)
  const created = await app.inject({ method: 'POST', url: '/write', payload: { keep: 'me' } })
  const session = await app.sessions.fromHeaders({ cookie: sessionCookie(created) })
  const value: Record<string, unknown> = {}
  session.set('value', value)
  value.big = 1n
  await t.rejects(session.save(), { code: 'FST_REDIS_SESSION_INVALID_VALUE' })
  const key = sessionKey(prefix, created.json().id)
  t.same(JSON.parse((await client.get(key))!).d, { keep: 'me' }, 'nothing was written')
  delete value.big
  await session.save()
  t.same(JSON.parse((await client.get(key))!).d, { keep: 'me', value: {} }, 'saved once it can be')
})
