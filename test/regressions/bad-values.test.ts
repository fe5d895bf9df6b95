import { test } from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { Gate } from '../helpers/gate.js'
import { buildApp, sessionCookie, sessionKey } from '../helpers/app.js'

const H = 'x-session-id'

/** The session header a response carried. */
function header (res: LightMyRequestResponse): string {
  const value = res.headers[H]
  if (typeof value !== 'string') throw new Error(`response carried no ${H} header`)
  return value
}

// Each request checked its own increment, but their merged sum overflowed to Infinity, which
// JSON stores as null: later increments of the key then failed.
test('parallel increments that together overflow: the stored value stays finite, the ones that overflow fail with the code', async (t) => {
  const gate = new Gate()
  const { app, client, prefix } = await buildApp(t, {
    routes (app) {
      app.post('/huge', async (req) => {
        req.session.increment('n', 1e308)
        await gate.hold()
        return 'ok'
      })
    }
  })
  const created = await app.inject({ method: 'POST', url: '/write', payload: { n: 0 } })
  const cookie = sessionCookie(created)
  const key = sessionKey(prefix, created.json().id)
  const pending = Array.from({ length: 3 }, () => app.inject({ method: 'POST', url: '/huge', headers: { cookie } }))
  await gate.reached(3)
  gate.open()
  const results = await Promise.all(pending)
  t.same(results.map(r => r.statusCode).sort(), [200, 500, 500], 'one fits, the two that would overflow fail')
  t.same(results.filter(r => r.statusCode === 500).map(r => r.json().code), ['FST_REDIS_SESSION_INVALID_VALUE', 'FST_REDIS_SESSION_INVALID_VALUE'])
  t.equal(JSON.parse((await client.get(key))!).d.n, 1e308, 'the stored value is the one that fitted')
  const after = await app.inject({ method: 'POST', url: '/increment', headers: { cookie } })
  t.equal(after.statusCode, 200, 'the key can still be incremented')
  t.equal(after.json().n, 1e308 + 1)
})

// Assigning __proto__ on the session replaced its prototype: the end of the request then failed
// with "session[kFinish] is not a function", a 500 without a code.
test('assigning __proto__ on the session is refused with a code; the session keeps working', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    routes (app) {
      app.post('/assign', async (req) => {
        // session.__proto__ = …, spelt so that lint lets it through
        Reflect.set(req.session, '__proto__', { polluted: 'yes' })
        return 'ok'
      })
      app.get('/proto', async (req) => ({ same: Reflect.get(req.session, '__proto__') === Object.getPrototypeOf(req.session) }))
      app.post('/object-assign', async (req) => {
        Object.assign(req.session, JSON.parse('{"__proto__":{"polluted":"yes"}}'))
        return 'ok'
      })
    }
  })
  const created = await app.inject({ method: 'POST', url: '/write', payload: { keep: 'me' } })
  const cookie = sessionCookie(created)
  const key = sessionKey(prefix, created.json().id)
  const stored = await client.get(key)
  for (const url of ['/assign', '/object-assign']) {
    const res = await app.inject({ method: 'POST', url, headers: { cookie } })
    t.equal(res.statusCode, 500, `${url}: status`)
    t.equal(res.json().code, 'FST_REDIS_SESSION_INVALID_KEY', `${url}: code`)
    t.equal(await client.get(key), stored, `${url}: the stored session is unchanged`)
    const fresh = await app.inject({ method: 'POST', url })
    t.equal(fresh.json().code, 'FST_REDIS_SESSION_INVALID_KEY', `${url}: code for a new session`)
  }
  const read = await app.inject({ url: '/read', headers: { cookie } })
  t.same(read.json().data, { keep: 'me' })
  t.equal(({} as Record<string, unknown>).polluted, undefined)
  t.same((await app.inject({ url: '/proto', headers: { cookie } })).json(), { same: true }, 'reading __proto__ gives the prototype')
})

test('fromHeaders refuses a log that is not a logger with a code', async (t) => {
  const { app } = await buildApp(t)
  const forged = { cookie: 'sid=forged.value' }
  for (const log of [{}, null, 'log', { debug () {} }]) {
    await t.rejects(app.sessions.fromHeaders(forged, { log } as never), { code: 'FST_REDIS_SESSION_INVALID_VALUE' }, `log: ${JSON.stringify(log)}`)
  }
  const session = await app.sessions.fromHeaders(forged, { log: app.log })
  t.equal(session.isNew, true, 'a real logger is taken')
})

test('increment() with a step that is not a finite number is refused with the code', async (t) => {
  const steps: Record<string, unknown> = { BigInt: 1n, string: '1', NaN, Infinity, object: {} }
  const { app, client, prefix } = await buildApp(t, {
    routes (app) {
      app.post('/step', async (req) => {
        const { kind } = req.body as { kind: string }
        return { n: req.session.increment('n', steps[kind] as number) }
      })
    }
  })
  const created = await app.inject({ method: 'POST', url: '/write', payload: { n: 1 } })
  const cookie = sessionCookie(created)
  const key = sessionKey(prefix, created.json().id)
  const stored = await client.get(key)
  for (const kind of Object.keys(steps)) {
    const res = await app.inject({ method: 'POST', url: '/step', headers: { cookie }, payload: { kind } })
    t.equal(res.statusCode, 500, `${kind}: status`)
    t.equal(res.json().code, 'FST_REDIS_SESSION_INVALID_VALUE', `${kind}: code`)
  }
  t.equal(await client.get(key), stored, 'nothing was written')
})

// The HTTP path receives a repeated header joined with ", " and refuses it; fromHeaders, given the
// list itself, passed over it and opened the session of the cookie.
test('idFrom both: a repeated id header is treated alike by HTTP and fromHeaders', async (t) => {
  const { app } = await buildApp(t, { session: { idFrom: 'both' } })
  const alice = await app.inject({ method: 'POST', url: '/write', payload: { user: 'alice' } })
  const bob = await app.inject({ method: 'POST', url: '/write', payload: { user: 'bob' } })
  const cases: Record<string, string[]> = {
    'the same value twice': [header(bob), header(bob)],
    'two values': [header(bob), header(alice)],
    'one value in a list': [header(bob)]
  }
  for (const [name, values] of Object.entries(cases)) {
    const headers = { cookie: sessionCookie(alice), [H]: values }
    const overHttp = await app.inject({ url: '/read', headers })
    const detached = await app.sessions.fromHeaders(headers)
    t.same({ isNew: detached.isNew, data: detached.toJSON() }, { isNew: overHttp.json().isNew, data: overHttp.json().data }, `${name}: the same session`)
    t.not(detached.toJSON().user, 'alice', `${name}: never the cookie's session`)
  }
  const repeated = await app.sessions.fromHeaders({ cookie: sessionCookie(alice), [H]: [header(bob), header(bob)] })
  t.equal(repeated.isNew, true, 'a repeated header is refused')
})

// Array.isArray passed any Array subclass, whose toJSON then decided what was stored.
test('set() refuses an Array subclass, with or without its own toJSON', async (t) => {
  class Tagged extends Array<number> {
    toJSON (): string { return 'something else' }
  }
  class Plain extends Array<number> {}
  const values: Record<string, () => unknown> = {
    'a subclass with toJSON': () => Tagged.from([1, 2]),
    'a subclass inside an object': () => ({ list: Tagged.from([1]) }),
    'a plain subclass': () => Plain.from([1, 2])
  }
  const { app, client, prefix } = await buildApp(t, {
    routes (app) {
      app.post('/array', async (req) => {
        const { kind } = req.body as { kind: string }
        req.session.set('list', values[kind]())
        return 'ok'
      })
    }
  })
  const created = await app.inject({ method: 'POST', url: '/write', payload: { keep: 'me' } })
  const cookie = sessionCookie(created)
  const key = sessionKey(prefix, created.json().id)
  const stored = await client.get(key)
  for (const kind of Object.keys(values)) {
    const res = await app.inject({ method: 'POST', url: '/array', headers: { cookie }, payload: { kind } })
    t.equal(res.statusCode, 500, `${kind}: status`)
    t.equal(res.json().code, 'FST_REDIS_SESSION_INVALID_VALUE', `${kind}: code`)
  }
  t.equal(await client.get(key), stored, 'nothing was written')
})
