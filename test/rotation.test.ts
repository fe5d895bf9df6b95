// rotateEvery: ids renewed on a schedule, the old id leading to the session for a grace window.
import { test, type Test } from 'tap'
import Fastify, { type LightMyRequestResponse } from 'fastify'
import type { Redis } from 'ioredis'
import redisSession from '../lib/index.js'
import { SECRET, buildApp, connect, keysUnder, sessionCookie, setCookies, sessionKey, type TestApp } from './helpers/app.js'
import { logoutRoute } from './helpers/routes.js'
import { Gate } from './helpers/gate.js'
import { sign } from '@fastify/cookie'
import { aliasText } from '../lib/model/alias.js'

const idOf = (cookie: string): string => decodeURIComponent(cookie.slice('sid='.length)).split('.')[0]

/** Makes the stored session look as if its id was issued `ms` ago. */
async function age (client: Redis, key: string, ms: number): Promise<void> {
  const doc = JSON.parse(await client.get(key) as string)
  await client.set(key, JSON.stringify({ ...doc, c: doc.c - ms }), 'KEEPTTL')
}

test('a session older than rotateEvery gets a new id; the old one leads to it for the grace window only', async (t) => {
  const { app, client, prefix } = await buildApp(t, { session: { rotateEvery: 60, rotateGrace: 20 } })
  const created = await app.inject({ method: 'POST', url: '/write', payload: { cart: [1] } })
  const oldCookie = sessionCookie(created)
  const oldId = idOf(oldCookie)
  const young = await app.inject({ url: '/read', headers: { cookie: oldCookie } })
  t.same(setCookies(young), [], 'younger than rotateEvery: no new id')

  await age(client, sessionKey(prefix, oldId), 61_000)
  const rotated = await app.inject({ url: '/read', headers: { cookie: oldCookie } })
  const newCookie = sessionCookie(rotated)
  const newId = idOf(newCookie)
  t.not(newId, oldId, 'a new id in the cookie')
  t.same(rotated.json().data, { cart: [1] })
  t.equal(rotated.json().id, newId, 'the request already runs under the new id')
  const alias = await client.get(sessionKey(prefix, oldId)) as string
  t.match(alias, /^\{"moved":"[A-Za-z0-9_-]+","until":\d+\}$/)
  t.notOk(alias.includes(newId), 'the alias does not give the new id away')
  const pttl = await client.pttl(sessionKey(prefix, oldId))
  t.ok(pttl > 18_000 && pttl <= 20_000, `the alias ends with the grace window (${pttl} ms)`)
  t.same(JSON.parse(await client.get(sessionKey(prefix, newId)) as string).d, { cart: [1] })

  const late = await app.inject({ url: '/read', headers: { cookie: oldCookie } })
  t.same(late.json().data, { cart: [1] }, 'the old cookie still works within the grace window')
  t.equal(sessionCookie(late), newCookie, 'and is told the new id')
  const aliasTtl = await client.pttl(sessionKey(prefix, oldId))
  t.ok(aliasTtl > 18_000 && aliasTtl <= pttl, `reading through the alias does not extend it (${aliasTtl} ms)`)
  t.equal(app.sessions.stats().rotated, 1)

  await client.del(sessionKey(prefix, oldId))
  const after = await app.inject({ url: '/read', headers: { cookie: oldCookie } })
  t.same(after.json().data, {}, 'past the grace window the old cookie gets a fresh session')
  const current = await app.inject({ url: '/read', headers: { cookie: newCookie } })
  t.same(current.json().data, { cart: [1] })
  t.same(setCookies(current), [], 'the new id is young: no further rotation')
})

/**
 * A request that sets `slow` and then waits at a gate, sent with a session's cookie; meanwhile the
 * session is aged past rotateEvery and a read rotates it.
 */
async function rotatedWhileInFlight (t: Test): Promise<TestApp & { gate: Gate, slow: Promise<LightMyRequestResponse>, rotated: LightMyRequestResponse }> {
  const gate = new Gate()
  const { app, client, prefix } = await buildApp(t, {
    session: { rotateEvery: 60 },
    routes: (app) => {
      app.post('/slow', async (req) => {
        req.session.set('slow', true)
        await gate.hold()
        return 'ok'
      })
    }
  })
  const created = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const oldCookie = sessionCookie(created)
  const slow = app.inject({ method: 'POST', url: '/slow', headers: { cookie: oldCookie } })
  await gate.reached(1)
  await age(client, sessionKey(prefix, idOf(oldCookie)), 61_000)
  const rotated = await app.inject({ url: '/read', headers: { cookie: oldCookie } })
  return { app, client, prefix, gate, slow, rotated }
}

test('a request that loaded before the rotation saves its change to the successor, and gets the new cookie', async (t) => {
  const { app, gate, slow, rotated } = await rotatedWhileInFlight(t)
  const newCookie = sessionCookie(rotated)
  gate.open()
  const res = await slow
  t.equal(res.statusCode, 200, 'the request in flight does not fail')
  t.equal(sessionCookie(res), newCookie, 'and hands the new id to its client')
  const read = await app.inject({ url: '/read', headers: { cookie: newCookie } })
  t.same(read.json().data, { a: 1, slow: true }, 'its change landed in the successor')
})

test('parallel requests with an old cookie on two instances: one rotation, no failure, no lost increment', async (t) => {
  const client = await connect(t)
  const { app: a, prefix } = await buildApp(t, { client, session: { rotateEvery: 60 } })
  const b = Fastify()
  t.teardown(() => b.close())
  await b.register(redisSession, { client: await connect(t), secret: SECRET, prefix, rotateEvery: 60 })
  b.post('/increment', async (req) => ({ n: req.session.increment('n') }))
  await b.ready()
  const created = await a.inject({ method: 'POST', url: '/write', payload: { n: 0 } })
  const cookie = sessionCookie(created)
  await age(client, sessionKey(prefix, idOf(cookie)), 61_000)
  const responses = await Promise.all(Array.from({ length: 100 }, (_, i) =>
    (i % 2 === 0 ? a : b).inject({ method: 'POST', url: '/increment', headers: { cookie } })))
  t.same([...new Set(responses.map(res => res.statusCode))], [200], 'every request answered 200')
  const newIds = new Set(responses.flatMap(res => res.cookies.map(c => c.value.split('.')[0])))
  t.equal(newIds.size, 1, 'one successor, whichever instance rotated')
  const [successor] = newIds
  t.equal(JSON.parse(await client.get(sessionKey(prefix, successor)) as string).d.n, 100, 'no increment lost')
  const sessions = (await keysUnder(client, prefix)).filter(key => key !== sessionKey(prefix, idOf(cookie)))
  t.same(sessions, [sessionKey(prefix, successor)], 'no stray copy left behind')
})

test('destroy() through the old cookie within the grace window ends the successor and the alias', async (t) => {
  const gate = new Gate()
  const { app, client, prefix } = await buildApp(t, {
    session: { rotateEvery: 60 },
    routes: (app) => {
      logoutRoute(app)
      app.post('/slow-logout', async (req) => {
        await gate.hold()
        await req.session.destroy()
        return 'bye'
      })
    }
  })
  for (const loadedBefore of [false, true]) {
    const created = await app.inject({ method: 'POST', url: '/write', payload: { user: 'ann' } })
    const oldCookie = sessionCookie(created)
    // a logout that loaded the session before the rotation, or one that came after it with the old cookie
    const slow = loadedBefore ? app.inject({ method: 'POST', url: '/slow-logout', headers: { cookie: oldCookie } }) : undefined
    if (slow !== undefined) await gate.reached(1)
    await age(client, sessionKey(prefix, idOf(oldCookie)), 61_000)
    const rotated = await app.inject({ url: '/read', headers: { cookie: oldCookie } })
    t.not(sessionCookie(rotated), oldCookie, 'rotated')
    if (slow !== undefined) gate.open()
    const logout = slow ?? app.inject({ method: 'POST', url: '/logout', headers: { cookie: oldCookie } })
    t.equal((await logout).statusCode, 200)
    const left = await keysUnder(client, prefix)
    t.same(left.filter(key => !key.endsWith(idOf(oldCookie))), [], `the successor is gone (${loadedBefore ? 'loaded before' : 'came after'})`)
    if (!loadedBefore) t.same(left, [], 'and so is the alias')
  }
})

test('an alias that is not the old id\'s, or an alias of an alias, leads to a fresh session', async (t) => {
  const { app, client, prefix } = await buildApp(t)
  const created = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const cookie = sessionCookie(created)
  await client.set(sessionKey(prefix, idOf(cookie)), '{"moved":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","until":1}')
  const forged = await app.inject({ url: '/read', headers: { cookie } })
  t.same(forged.json().data, {})
  t.not(forged.json().id, idOf(cookie))
  const second = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  await client.set(sessionKey(prefix, idOf(sessionCookie(second))), '{"moved":"not an alias"}')
  const malformed = await app.inject({ url: '/read', headers: { cookie: sessionCookie(second) } })
  t.same(malformed.json().data, {}, 'a malformed alias too')

  const [a, b, c] = ['a', 'b', 'c'].map(letter => letter.repeat(43))
  const until = Date.now() + 60_000
  await client.set(sessionKey(prefix, a), aliasText(a, b, until), 'PX', 60_000)
  await client.set(sessionKey(prefix, b), aliasText(b, c, until), 'PX', 60_000)
  await client.set(sessionKey(prefix, c), JSON.stringify({ v: 1, a: until, t: 0, c: Date.now(), d: { deep: true } }), 'PX', 60_000)
  const chained = await app.inject({ url: '/read', headers: { cookie: `sid=${encodeURIComponent(sign(a, SECRET))}` } })
  t.same(chained.json().data, {}, 'one alias is followed, not a chain')
})

test('rotateEvery and rotateGrace are validated', async (t) => {
  for (const bad of [{ rotateEvery: 0 }, { rotateEvery: 1.5 }, { rotateGrace: 0 }]) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(redisSession, { client: await connect(t), secret: SECRET, ...bad }).ready() },
      { code: 'FST_REDIS_SESSION_INVALID_OPTION', message: /rotate(Every|Grace)/ })
  }
})

test('without rolling, the old cookie leads to the successor all the same', async (t) => {
  const { app, client, prefix } = await buildApp(t, { session: { rotateEvery: 60, rolling: false } })
  const created = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const oldCookie = sessionCookie(created)
  await age(client, sessionKey(prefix, idOf(oldCookie)), 61_000)
  const rotated = await app.inject({ url: '/read', headers: { cookie: oldCookie } })
  const late = await app.inject({ url: '/read', headers: { cookie: oldCookie } })
  t.same(late.json().data, { a: 1 })
  t.equal(sessionCookie(late), sessionCookie(rotated))
})

test('a request in flight whose successor ended meanwhile gets GONE, and nothing is revived', async (t) => {
  const { client, prefix, gate, slow, rotated } = await rotatedWhileInFlight(t)
  await client.del(sessionKey(prefix, idOf(sessionCookie(rotated))))
  gate.open()
  const res = await slow
  t.equal(res.statusCode, 409)
  t.equal(res.json().code, 'FST_REDIS_SESSION_GONE')
  t.same((await keysUnder(client, prefix)).length, 1, 'only the alias, until its window ends')
})

test('a request in flight whose key now holds an alias it cannot follow gets GONE', async (t) => {
  const { client, prefix, gate, slow } = await rotatedWhileInFlight(t)
  const aliases: string[] = []
  for (const key of await keysUnder(client, prefix)) if ((await client.get(key))!.startsWith('{"moved":')) aliases.push(key)
  t.equal(aliases.length, 1, 'the old key is an alias')
  // an alias sealed with some other id: it names no successor of this one
  await client.set(aliases[0], `{"moved":"${'A'.repeat(43)}","until":${Date.now() + 60_000}}`, 'PX', 60_000)
  gate.open()
  const res = await slow
  t.equal(res.statusCode, 409)
  t.equal(res.json().code, 'FST_REDIS_SESSION_GONE')
})

test('a rotation that cannot store its new id leaves the session as it was', async (t) => {
  const taken = 't'.repeat(43)
  let calls = 0
  const { app, client, prefix } = await buildApp(t, {
    // the first id is the session's own; the rotation then draws one already in use
    session: { rotateEvery: 60, idGenerator: () => (calls++ === 0 ? 'f'.repeat(43) : taken) }
  })
  await client.set(sessionKey(prefix, taken), 'someone else', 'EX', 60)
  const created = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const cookie = sessionCookie(created)
  await age(client, sessionKey(prefix, idOf(cookie)), 61_000)
  const read = await app.inject({ url: '/read', headers: { cookie } })
  t.same(read.json(), { id: 'f'.repeat(43), isNew: false, data: { a: 1 } })
  t.same(setCookies(read), [], 'no new cookie')
  t.equal(await client.get(sessionKey(prefix, taken)), 'someone else', 'the other key is untouched')
})
