import { test, type Test } from 'tap'
import type { FastifyInstance, FastifyRequest, InjectOptions, LightMyRequestResponse } from 'fastify'
import type { Redis } from 'ioredis'
import { buildApp, connect, keysUnder, sessionCookie, setCookies, sharedRedisUrl, uniquePrefix, sessionKey } from './helpers/app.js'
import { loginRoute, logoutRoute } from './helpers/routes.js'
import { Gate } from './helpers/gate.js'

/** What a held request does to its session before it waits at the gate. */
const changes: Record<string, (req: FastifyRequest) => unknown> = {
  increment: (req) => req.session.increment('n'),
  write: (req) => { for (const [key, value] of Object.entries(req.body as object)) req.session.set(key, value) },
  delete: (req) => req.session.delete('a'),
  clear: (req) => { req.session.clear(); req.session.set('x', 1) },
  flash: (req) => req.session.flash('info'),
  ttl: (req) => req.session.setTtl(120),
  // loads, waits, and only then regenerates
  regenerate: () => undefined,
  'write-then-regenerate': (req) => req.session.set('mine', true)
}

/** The keys a login here carries to the new id: every key these tests write. */
const LOGIN_KEEPS = ['user', 'n', 'mine']

function routesWith (gate: Gate): (app: FastifyInstance) => void {
  return (app) => {
    app.post('/held/:change', async (req) => {
      const change = (req.params as { change: string }).change
      const result = changes[change](req)
      await gate.hold()
      if (change.endsWith('regenerate')) await req.session.regenerate(LOGIN_KEEPS)
      return { id: req.session.id, result }
    })
    app.post('/count', async (req) => ({ id: req.session.id, n: req.session.increment('n') }))
    loginRoute(app, LOGIN_KEEPS)
    logoutRoute(app)
    app.post('/flash', async (req) => {
      req.session.flash('info', (req.body as { message: string }).message)
      return 'ok'
    })
    app.get('/flash', async (req) => req.session.flash('info'))
  }
}

async function gatedApp (t: Test): Promise<{ app: FastifyInstance, client: Redis, prefix: string, gate: Gate }> {
  const gate = new Gate()
  return { ...await buildApp(t, { routes: routesWith(gate) }), gate }
}

/** A stored session with something to recognise it by. */
async function aliceSession (app: FastifyInstance): Promise<{ cookie: string, id: string }> {
  const first = await app.inject({ method: 'POST', url: '/write', payload: { user: 'alice', n: 0 } })
  return { cookie: sessionCookie(first), id: first.json().id }
}

function post (url: string, cookie: string, payload?: object): InjectOptions {
  return { method: 'POST', url, headers: { cookie }, payload }
}

/** Each distinct outcome: 200, or the error code. */
function outcomes (responses: LightMyRequestResponse[]): Array<number | string> {
  return [...new Set(responses.map(res => res.statusCode === 200 ? 200 : res.json().code))]
}

function assertOkOrGone (t: Test, responses: LightMyRequestResponse[]): void {
  const others = outcomes(responses).filter(outcome => outcome !== 200 && outcome !== 'FST_REDIS_SESSION_GONE')
  t.same(others, [], 'each response is 200 or 409 FST_REDIS_SESSION_GONE')
}

/** The old cookie now gets a fresh, empty session. */
async function assertFresh (t: Test, app: FastifyInstance, cookie: string, oldId: string): Promise<void> {
  const read = await app.inject({ url: '/read', headers: { cookie } })
  const { id, isNew, data } = read.json()
  t.same({ isNew, data }, { isNew: true, data: {} }, 'the old cookie gets a fresh, empty session')
  t.not(id, oldId)
}

/** No stored session anywhere under the prefix still holds alice's data. */
async function assertNobodyHoldsAlice (t: Test, client: Redis, prefix: string, except?: string): Promise<void> {
  for (const key of await keysUnder(client, prefix)) {
    if (key === except) continue
    t.notMatch(await client.get(key), /alice/, `${key} holds none of the destroyed session's data`)
  }
}

test('destroy() while 50 requests that changed the session are in flight: each gets 409, nothing is written back', async (t) => {
  const { app, client, prefix, gate } = await gatedApp(t)
  const { cookie, id } = await aliceSession(app)
  const held = Array.from({ length: 50 }, () => app.inject(post('/held/increment', cookie)))
  await gate.reached(50)

  const logout = await app.inject(post('/logout', cookie))
  t.equal(logout.statusCode, 200)
  gate.open()
  const responses = await Promise.all(held)
  t.same(outcomes(responses), ['FST_REDIS_SESSION_GONE'])
  t.equal(responses[0].statusCode, 409)
  t.same(await keysUnder(client, prefix), [], 'no key, under the old id or any other')
  await assertFresh(t, app, cookie, id)
})

test('destroy() racing with 50 requests that change the session: each is 200 or 409, and the data never comes back', async (t) => {
  const { app, client, prefix } = await gatedApp(t)
  const { cookie, id } = await aliceSession(app)
  const requests = Array.from({ length: 51 }, (_, i) => {
    if (i === 25) return app.inject(post('/logout', cookie))
    return app.inject(i % 2 === 0 ? post('/count', cookie) : post('/write', cookie, { ['k' + i]: i }))
  })
  const responses = await Promise.all(requests)
  assertOkOrGone(t, responses)
  t.equal(await client.exists(sessionKey(prefix, id)), 0, 'the old id is dead')
  // requests that loaded after the logout started sessions of their own, without alice's data
  await assertNobodyHoldsAlice(t, client, prefix)
  await assertFresh(t, app, cookie, id)
})

test('regenerate() while 50 requests that changed the session are in flight: the old id stays dead', async (t) => {
  const { app, client, prefix, gate } = await gatedApp(t)
  const { cookie, id } = await aliceSession(app)
  const held = Array.from({ length: 50 }, () => app.inject(post('/held/increment', cookie)))
  await gate.reached(50)

  const login = await app.inject(post('/login', cookie))
  const newId = login.json().id
  gate.open()
  t.same(outcomes(await Promise.all(held)), ['FST_REDIS_SESSION_GONE'])
  t.same(await keysUnder(client, prefix), [sessionKey(prefix, newId)], 'only the new id is stored')
  const read = await app.inject({ url: '/read', headers: { cookie: sessionCookie(login) } })
  t.same(read.json().data, { user: 'alice', n: 0 })
  await assertFresh(t, app, cookie, id)
})

test('regenerate() racing with 50 increments: the new session holds exactly the ones that answered 200 under the old id', async (t) => {
  const { app, client, prefix } = await gatedApp(t)
  const { cookie, id } = await aliceSession(app)
  const requests = Array.from({ length: 51 }, (_, i) => app.inject(post(i === 25 ? '/login' : '/count', cookie)))
  const responses = await Promise.all(requests)
  const login = responses.splice(25, 1)[0]
  const newId = login.json().id
  assertOkOrGone(t, responses)
  const landed = responses.filter(res => res.statusCode === 200 && res.json().id === id).length
  t.equal(await client.exists(sessionKey(prefix, id)), 0, 'the old id is dead')
  const stored = JSON.parse(await client.get(sessionKey(prefix, newId)) as string)
  t.same(stored.d, { user: 'alice', n: landed })
  await assertNobodyHoldsAlice(t, client, prefix, sessionKey(prefix, newId))
})

test('regenerate() carries this request\'s changes and those other requests saved meanwhile to the new id', async (t) => {
  const { app, client, prefix, gate } = await gatedApp(t)
  const { cookie, id } = await aliceSession(app)
  const held = app.inject(post('/held/write-then-regenerate', cookie))
  await gate.reached(1)
  t.equal((await app.inject(post('/count', cookie))).statusCode, 200)
  gate.open()

  const login = await held
  t.equal(login.statusCode, 200)
  t.equal(await client.exists(sessionKey(prefix, id)), 0)
  const read = await app.inject({ url: '/read', headers: { cookie: sessionCookie(login) } })
  t.same(read.json().data, { user: 'alice', n: 1, mine: true })
})

test('regenerate() after the session was destroyed meanwhile answers 409 and revives nothing', async (t) => {
  const { app, client, prefix, gate } = await gatedApp(t)
  const { cookie, id } = await aliceSession(app)
  const held = app.inject(post('/held/regenerate', cookie))
  await gate.reached(1)
  await app.inject(post('/logout', cookie))
  gate.open()

  const res = await held
  t.equal(res.statusCode, 409)
  t.equal(res.json().code, 'FST_REDIS_SESSION_GONE')
  t.same(setCookies(res), [], 'no cookie for a new id')
  t.same(await keysUnder(client, prefix), [])
  await assertFresh(t, app, cookie, id)
})

test('regenerate() of a session found corrupt answers 409 and stores nothing', async (t) => {
  const { app, client, prefix, gate } = await gatedApp(t)
  const { cookie, id } = await aliceSession(app)
  const held = app.inject(post('/held/regenerate', cookie))
  await gate.reached(1)
  await client.set(sessionKey(prefix, id), 'not a session', 'KEEPTTL')
  gate.open()

  const res = await held
  t.equal(res.json().code, 'FST_REDIS_SESSION_GONE')
  t.same(await keysUnder(client, prefix), [])
})

test('two logins of one session at once: one regenerate wins, the other gets 409, one session remains', async (t) => {
  const { app, client, prefix, gate } = await gatedApp(t)
  const { cookie } = await aliceSession(app)
  const held = [app.inject(post('/held/regenerate', cookie)), app.inject(post('/held/regenerate', cookie))]
  await gate.reached(2)
  gate.open()

  const responses = await Promise.all(held)
  t.same(responses.map(res => res.statusCode).sort(), [200, 409])
  const winner = responses.find(res => res.statusCode === 200) as LightMyRequestResponse
  t.same(await keysUnder(client, prefix), [sessionKey(prefix, winner.json().id)])
  const read = await app.inject({ url: '/read', headers: { cookie: sessionCookie(winner) } })
  t.same(read.json().data, { user: 'alice', n: 0 })
})

/**
 * Two app instances (own ioredis connections, one Redis, one prefix). A request on the first loads
 * the session, makes its change and waits; the second instance saves a change meanwhile; then the
 * first saves, finds a newer version, and must replay its change onto it.
 */
async function replayAcross (t: Test, setup: InjectOptions, change: string, rival: (cookie: string) => InjectOptions): Promise<{ held: LightMyRequestResponse, stored: { v: number, t: number, f?: unknown, d: unknown }, pttl: number, cookie: string, second: FastifyInstance }> {
  const gate = new Gate()
  const prefix = uniquePrefix()
  const url = await sharedRedisUrl()
  const { app: first, client } = await buildApp(t, { client: await connect(t, url), session: { prefix }, routes: routesWith(gate) })
  const { app: second } = await buildApp(t, { client: await connect(t, url), session: { prefix }, routes: routesWith(gate) })
  const created = await first.inject(setup)
  const cookie = sessionCookie(created)
  const id = (await first.inject({ url: '/read', headers: { cookie } })).json().id

  const pending = first.inject(post(`/held/${change}`, cookie))
  await gate.reached(1)
  t.equal((await second.inject(rival(cookie))).statusCode, 200)
  gate.open()
  const held = await pending
  t.equal(held.statusCode, 200)
  const stored = JSON.parse(await client.get(sessionKey(prefix, id)) as string)
  t.equal(stored.v, 3, 'created, the rival write, the replayed write')
  return { held, stored, pttl: await client.pttl(sessionKey(prefix, id)), cookie, second }
}

test('replay across instances: a delete lands on top of the other instance\'s write', async (t) => {
  const { stored } = await replayAcross(t, { method: 'POST', url: '/write', payload: { a: 1, b: 2 } }, 'delete',
    (cookie) => post('/write', cookie, { c: 3 }))
  t.same(stored.d, { b: 2, c: 3 })
})

test('replay across instances: clear() then set() land after the other instance\'s write', async (t) => {
  const { stored } = await replayAcross(t, { method: 'POST', url: '/write', payload: { a: 1 } }, 'clear',
    (cookie) => post('/write', cookie, { c: 3 }))
  t.same(stored.d, { x: 1 })
})

test('replay across instances: reading a flash removes only what was read', async (t) => {
  const { held, stored, cookie, second } = await replayAcross(t, { method: 'POST', url: '/flash', payload: { message: 'one' } }, 'flash',
    (cookie) => post('/flash', cookie, { message: 'two' }))
  t.same(held.json().result, ['one'])
  t.same(stored.f, { info: ['two'] })
  t.same((await second.inject({ url: '/flash', headers: { cookie } })).json(), ['two'])
})

test('replay across instances: setTtl() lands with the other instance\'s write', async (t) => {
  const { stored, pttl } = await replayAcross(t, { method: 'POST', url: '/write', payload: { a: 1 } }, 'ttl',
    (cookie) => post('/write', cookie, { c: 3 }))
  t.same({ t: stored.t, d: stored.d }, { t: 120, d: { a: 1, c: 3 } })
  t.ok(pttl > 118_000 && pttl <= 120_000, `the key lives by the session's own idle timeout (PTTL ${pttl} ms)`)
})

test('a session overwritten by something unreadable while a request changed it: 409, and the request writes nothing', async (t) => {
  const { app, client, prefix, gate } = await gatedApp(t)
  const { cookie, id } = await aliceSession(app)
  const held = app.inject(post('/held/increment', cookie))
  await gate.reached(1)
  await client.set(sessionKey(prefix, id), '{"v":7,"garbage', 'KEEPTTL')
  gate.open()

  const res = await held
  t.equal(res.json().code, 'FST_REDIS_SESSION_GONE')
  t.equal(await client.get(sessionKey(prefix, id)), '{"v":7,"garbage')
  await assertFresh(t, app, cookie, id)
})

test('a writer that loses to another instance on every attempt retries until timeout, then gives up with FST_REDIS_SESSION_CONFLICT', async (t) => {
  const prefix = uniquePrefix()
  const url = await sharedRedisUrl()
  const loser = await connect(t, url)
  const timeout = 300
  const { app: first, client } = await buildApp(t, { client: loser, session: { prefix, timeout } })
  const { app: second } = await buildApp(t, { client: await connect(t, url), session: { prefix } })
  const created = await first.inject({ method: 'POST', url: '/write', payload: { n: 0 } })
  const cookie = sessionCookie(created)
  const key = sessionKey(prefix, created.json().id)

  // Before each of the first instance's save attempts, the second instance saves an increment, so
  // every attempt meets a newer version than the one it expects. Bounded: after 1000 rivals they
  // stop (the loser would then succeed), far more than fit in the timeout.
  // (the first instance's only scripts on this key are its saves: it reads with GETEX)
  const scripted = loser as unknown as { evalsha: (...args: unknown[]) => Promise<unknown> }
  const evalsha = scripted.evalsha
  const rivals: number[] = []
  scripted.evalsha = async (...args: unknown[]) => {
    if (args[2] === key && rivals.length < 1000) rivals.push((await second.inject(post('/increment', cookie))).statusCode)
    return await evalsha.apply(loser, args)
  }

  const res = await first.inject(post('/write', cookie, { mine: true }))
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'FST_REDIS_SESSION_CONFLICT')
  t.ok(rivals.length > 2 && rivals.length < 1000, `${rivals.length} attempts: more than a few, ended by the timeout, not by the rivals`)
  t.match(res.json().message, new RegExp(`every one of ${rivals.length} attempts in \\d+ ms`), 'the error counts the attempts')
  t.same(rivals, Array(rivals.length).fill(200), 'each attempt beaten by a save of the other instance')
  t.equal(first.sessions.stats().conflicts, rivals.length, 'each one a conflict')
  const stored = JSON.parse(await client.get(key) as string)
  t.same({ v: stored.v, d: stored.d }, { v: rivals.length + 1, d: { n: rivals.length } }, 'every rival landed; the loser wrote nothing')
})

test('parallel writes that together exceed maxBytes: each either lands whole or fails with 507', async (t) => {
  const gate = new Gate()
  const { app, client, prefix } = await buildApp(t, { session: { maxBytes: 4096 }, routes: routesWith(gate) })
  const { cookie, id } = await aliceSession(app)
  // every request's own change fits; all of them together do not, so the merged write must be split
  const held = Array.from({ length: 30 }, (_, i) => app.inject(post('/held/write', cookie, { ['k' + i]: 'x'.repeat(300) })))
  await gate.reached(30)
  gate.open()

  const responses = await Promise.all(held)
  t.same(outcomes(responses).sort(), [200, 'FST_REDIS_SESSION_TOO_LARGE'].sort())
  const text = await client.get(sessionKey(prefix, id)) as string
  t.ok(Buffer.byteLength(text) <= 4096)
  const landed = responses.flatMap((res, i) => res.statusCode === 200 ? ['k' + i] : [])
  t.same(Object.keys(JSON.parse(text).d).sort(), ['n', 'user', ...landed].sort(), 'exactly the writes that answered 200 are stored')
  t.equal(responses.find(res => res.statusCode !== 200)?.statusCode, 507)
})

test('a new session whose id is already stored is refused, never merged into the stored one', async (t) => {
  const { app, client, prefix } = await buildApp(t, { session: { idGenerator: () => 'same-id-every-time-0123' } })
  const first = await app.inject({ method: 'POST', url: '/write', payload: { user: 'alice' } })
  const second = await app.inject({ method: 'POST', url: '/write', payload: { user: 'mallory' } })
  t.equal(second.statusCode, 500)
  t.equal(second.json().code, 'FST_REDIS_SESSION_BAD_ID')
  t.same(setCookies(second), [], 'no cookie for someone else\'s session')
  t.same(JSON.parse(await client.get(sessionKey(prefix, first.json().id)) as string).d, { user: 'alice' })
})
