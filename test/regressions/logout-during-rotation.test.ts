// A request that loaded a session just before another request rotated its id, and then logged out
// with regenerate(), took the old key (by then the alias) and answered 200 with a cleared cookie
// while the successor kept the user logged in; regenerate(keep) answered 409 and left it alive too.
// app.sessions.destroy(oldId) within the grace window likewise deleted the alias alone.
import { test, type Test } from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import type { Redis } from 'ioredis'
import { buildApp, keysUnder, sessionCookie, sessionKey } from '../helpers/app.js'
import { Gate } from '../helpers/gate.js'
import { aliasText } from '../../lib/model/alias.js'

const idOf = (cookie: string): string => decodeURIComponent(cookie.slice('sid='.length)).split('.')[0]

/** Makes the stored session look as if its id was issued a minute ago: older than rotateEvery. */
async function ageSession (client: Redis, prefix: string, cookie: string): Promise<void> {
  const key = sessionKey(prefix, idOf(cookie))
  const doc = JSON.parse(await client.get(key) as string)
  await client.set(key, JSON.stringify({ ...doc, c: doc.c - 61_000 }), 'KEEPTTL')
}

interface Race {
  app: FastifyInstance
  client: Redis
  prefix: string
  oldCookie: string
  /** The successor's cookie, as the rotating request handed it out. */
  newCookie: string
  /** The request that loaded the old id before the rotation; it ends the session once `gate` opens. */
  slow: Promise<LightMyRequestResponse>
  gate: Gate
}

/**
 * A logged-in session (uid 42, a: 1); a request to `url` loads it and waits at a gate, meanwhile
 * a read rotates the id and a write through the new cookie stores b: 2 in the successor.
 */
async function logoutRacingRotation (t: Test, url: string): Promise<Race> {
  const gate = new Gate()
  const { app, client, prefix } = await buildApp(t, {
    session: { userKey: 'uid', rotateEvery: 60 },
    routes: (app) => {
      app.post('/slow-logout', async (req) => {
        await gate.hold()
        await req.session.regenerate()
        return { id: req.session.id }
      })
      app.post('/slow-promote', async (req) => {
        await gate.hold()
        await req.session.regenerate(['uid', 'a', 'b'])
        return { id: req.session.id }
      })
      app.post('/slow-destroy', async (req) => {
        await gate.hold()
        await req.session.destroy()
        return 'bye'
      })
    }
  })
  const created = await app.inject({ method: 'POST', url: '/write', payload: { uid: 42, a: 1 } })
  const oldCookie = sessionCookie(created)
  const slow = app.inject({ method: 'POST', url, headers: { cookie: oldCookie } })
  await gate.reached(1)
  await ageSession(client, prefix, oldCookie)
  const rotated = await app.inject({ url: '/read', headers: { cookie: oldCookie } })
  const newCookie = sessionCookie(rotated)
  t.not(idOf(newCookie), idOf(oldCookie), 'rotated while the request was in flight')
  const write = await app.inject({ method: 'POST', url: '/write', headers: { cookie: newCookie }, payload: { b: 2 } })
  t.equal(write.statusCode, 200)
  return { app, client, prefix, oldCookie, newCookie, slow, gate }
}

/** The session keys under the prefix (the user index left out). */
async function sessionKeys (client: Redis, prefix: string): Promise<string[]> {
  return (await keysUnder(client, prefix)).filter(key => !key.startsWith(`${prefix}user:`))
}

async function anonymous (t: Test, app: FastifyInstance, cookie: string, what: string): Promise<void> {
  const read = await app.inject({ url: '/read', headers: { cookie } })
  t.equal(read.json().isNew, true, `${what}: anonymous`)
  t.same(read.json().data, {})
}

test('regenerate() (log out) in flight across a rotation ends the successor too', async (t) => {
  const { app, client, prefix, oldCookie, newCookie, slow, gate } = await logoutRacingRotation(t, '/slow-logout')
  gate.open()
  const res = await slow
  t.equal(res.statusCode, 200)
  t.equal(res.cookies.find(c => c.name === 'sid')?.value, '', 'the cookie is cleared')
  await anonymous(t, app, newCookie, 'the successor\'s cookie')
  await anonymous(t, app, oldCookie, 'the old cookie')
  t.same(await sessionKeys(client, prefix), [], 'neither the successor nor the alias is left')
  t.same(await app.sessions.list(42), [])
})

test('regenerate(keep) in flight across a rotation carries the successor\'s latest data and ends it', async (t) => {
  const { app, client, prefix, oldCookie, newCookie, slow, gate } = await logoutRacingRotation(t, '/slow-promote')
  gate.open()
  const res = await slow
  t.equal(res.statusCode, 200, 'no GONE: the session was alive under its new id')
  const cookie = sessionCookie(res)
  t.equal(idOf(cookie), res.json().id)
  const read = await app.inject({ url: '/read', headers: { cookie } })
  t.same(read.json().data, { uid: 42, a: 1, b: 2 }, 'the change saved to the successor came along')
  await anonymous(t, app, newCookie, 'the successor\'s cookie')
  await anonymous(t, app, oldCookie, 'the old cookie')
  t.same(await sessionKeys(client, prefix), [sessionKey(prefix, idOf(cookie))], 'the regenerated session alone')
  t.same((await app.sessions.list(42)).map(s => s.idHint), [app.sessions.idHint(idOf(cookie))])
})

test('regenerate(keep) in flight across a rotation whose successor ended meanwhile: GONE, nothing alive', async (t) => {
  const { app, client, prefix, newCookie, slow, gate } = await logoutRacingRotation(t, '/slow-promote')
  t.ok(await app.sessions.destroy(idOf(newCookie)), 'the successor is destroyed')
  gate.open()
  const res = await slow
  t.equal(res.statusCode, 409)
  t.equal(res.json().code, 'FST_REDIS_SESSION_GONE')
  t.same(await sessionKeys(client, prefix), [], 'no key revived, and the alias is gone')
})

test('destroy() in flight across a rotation ends the successor and the alias', async (t) => {
  const { app, client, prefix, oldCookie, newCookie, slow, gate } = await logoutRacingRotation(t, '/slow-destroy')
  gate.open()
  t.equal((await slow).statusCode, 200)
  await anonymous(t, app, newCookie, 'the successor\'s cookie')
  await anonymous(t, app, oldCookie, 'the old cookie')
  t.same(await sessionKeys(client, prefix), [])
  t.same(await app.sessions.list(42), [])
})

test('app.sessions.destroy(oldId) within the grace window ends the successor', async (t) => {
  const { app, client, prefix, oldCookie, newCookie, slow, gate } = await logoutRacingRotation(t, '/slow-destroy')
  t.equal(await app.sessions.destroy(idOf(oldCookie)), true)
  await anonymous(t, app, newCookie, 'the successor\'s cookie')
  t.same(await sessionKeys(client, prefix), [], 'neither the successor nor the alias is left')
  t.same(await client.zrange(`${prefix}user:42`, '0', '-1'), [], 'nor the successor\'s index entry')
  t.equal(await app.sessions.destroy(idOf(oldCookie)), false, 'a second time: nothing there')
  gate.open()
  t.equal((await slow).statusCode, 200, 'a destroy() in flight finds nothing left and answers')
})

test('a chain of aliases is ended link by link; an alias sealed for another id ends there', async (t) => {
  const gate = new Gate()
  const { app, client, prefix } = await buildApp(t, {
    session: { rotateEvery: 60 },
    routes: (app) => {
      app.post('/slow-promote', async (req) => {
        await gate.hold()
        await req.session.regenerate(['a'])
        return { id: req.session.id }
      })
    }
  })
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map(letter => letter.repeat(43))
  const until = Date.now() + 60_000
  // a rotated to b, b to c: sessions.destroy(a) ends c
  await client.set(sessionKey(prefix, a), aliasText(a, b, until), 'PX', 60_000)
  await client.set(sessionKey(prefix, b), aliasText(b, c, until), 'PX', 60_000)
  await client.set(sessionKey(prefix, c), JSON.stringify({ v: 1, a: until, t: 0, c: Date.now(), d: { a: 1 } }), 'PX', 60_000)
  t.equal(await app.sessions.destroy(a), true)
  t.same(await sessionKeys(client, prefix), [])
  // an alias whose successor ended: the alias goes
  await client.set(sessionKey(prefix, a), aliasText(a, b, until), 'PX', 60_000)
  t.equal(await app.sessions.destroy(a), true)
  t.same(await sessionKeys(client, prefix), [])

  // a request holds d; its key then becomes an alias that d's id cannot open
  const created = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
  const cookie = sessionCookie(created)
  const slow = app.inject({ method: 'POST', url: '/slow-promote', headers: { cookie } })
  await gate.reached(1)
  await client.set(sessionKey(prefix, idOf(cookie)), aliasText(d, a, until), 'PX', 60_000)
  gate.open()
  const res = await slow
  t.equal(res.statusCode, 409)
  t.equal(res.json().code, 'FST_REDIS_SESSION_GONE')
  t.same(await sessionKeys(client, prefix), [])
})
