// With userKey and rotateEvery, a rotation stored the successor already naming its user, so the
// index never learnt the new stored id: after one rotation list(user) was empty and destroyAll(user)
// deleted nothing while the session stayed logged in.
import { test, type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import { buildApp, keysUnder, sessionKey } from '../helpers/app.js'
import { Browser } from '../helpers/scale.js'
import { Gate } from '../helpers/gate.js'

const idOf = (cookie: string): string => decodeURIComponent(cookie.slice('sid='.length)).split('.')[0]

/** Makes the stored session look as if its id was issued a minute ago: older than rotateEvery. */
async function ageSession (client: Redis, prefix: string, browser: Browser): Promise<void> {
  const key = sessionKey(prefix, idOf(browser.cookie!))
  const doc = JSON.parse(await client.get(key) as string)
  await client.set(key, JSON.stringify({ ...doc, c: doc.c - 61_000 }), 'KEEPTTL')
}

async function indexedApp (t: Test): Promise<{ app: FastifyInstance, client: Redis, prefix: string }> {
  return await buildApp(t, {
    session: { userKey: 'uid', rotateEvery: 60 },
    routes: (app) => {
      app.post('/login', async (req) => {
        const { uid, remember } = req.body as { uid: number, remember?: boolean }
        await req.session.regenerate()
        req.session.set('uid', uid)
        if (remember === true) req.session.rememberMe()
        return { id: req.session.id }
      })
      app.post('/promote', async (req) => {
        await req.session.regenerate(['uid'])
        req.session.set('role', 'admin')
        return { id: req.session.id }
      })
    }
  })
}

/** One read with an aged session: it rotates, and the browser takes the new cookie. */
async function rotate (t: Test, app: FastifyInstance, client: Redis, prefix: string, browser: Browser): Promise<string> {
  const before = browser.cookie!
  await ageSession(client, prefix, browser)
  const read = await browser.send(app, 'GET', '/read')
  t.equal(read.statusCode, 200)
  t.not(browser.cookie, before, 'the read rotated the id')
  t.equal(read.json().id, idOf(browser.cookie!))
  return idOf(browser.cookie!)
}

/** list(user) shows exactly the browser's session; destroyAll(user) ends it and logs the browser out. */
async function loggedOutEverywhere (t: Test, app: FastifyInstance, browser: Browser, user: number): Promise<void> {
  const listed = await app.sessions.list(user)
  t.same(listed.map(s => s.idHint), [app.sessions.idHint(idOf(browser.cookie!))], `list(${user}) shows the rotated session`)
  t.equal(await app.sessions.destroyAll(user), 1, `destroyAll(${user}) deletes it`)
  const after = await browser.send(app, 'GET', '/read')
  t.equal(after.json().isNew, true, 'the rotated cookie is anonymous afterwards')
  t.same(after.json().data, {})
  t.same(await app.sessions.list(user), [])
}

test('a rotated session stays in its user\'s index: list shows it, destroyAll ends it', async (t) => {
  const { app, client, prefix } = await indexedApp(t)
  const browser = new Browser()
  const oldCookie = (await browser.send(app, 'POST', '/login', { uid: 42 }), browser.cookie!)
  t.equal((await app.sessions.list(42)).length, 1, 'logged in: listed')
  await rotate(t, app, client, prefix, browser)
  await loggedOutEverywhere(t, app, browser, 42)
  const old = await app.inject({ url: '/read', headers: { cookie: oldCookie } })
  t.equal(old.json().isNew, true, 'the old cookie leads nowhere either')

  const indexes = async (): Promise<string[]> => [...await keysUnder(client, `${prefix}user:`), ...await client.zrange(`${prefix}user:42`, '0', '-1')]
  const before = await indexes()
  const visitor = new Browser()
  await visitor.send(app, 'POST', '/write', { cart: 1 })
  await rotate(t, app, client, prefix, visitor)
  t.same((await visitor.send(app, 'GET', '/read')).json().data, { cart: 1 }, 'a session without a user rotates too')
  t.same(await indexes(), before, 'and joins no index')
})

test('a session regenerated with its user kept, then rotated, stays in the index', async (t) => {
  const { app, client, prefix } = await indexedApp(t)
  const browser = new Browser()
  await browser.send(app, 'POST', '/login', { uid: 42 })
  await browser.send(app, 'POST', '/promote')
  await rotate(t, app, client, prefix, browser)
  t.same((await browser.send(app, 'GET', '/read')).json().data, { uid: 42, role: 'admin' })
  await loggedOutEverywhere(t, app, browser, 42)
})

test('a remembered session, rotated, stays in the index and keeps its persistent cookie', async (t) => {
  const { app, client, prefix } = await indexedApp(t)
  const browser = new Browser()
  await browser.send(app, 'POST', '/login', { uid: 42, remember: true })
  await ageSession(client, prefix, browser)
  const read = await browser.send(app, 'GET', '/read')
  const cookie = read.cookies.find(c => c.name === 'sid')
  t.ok(cookie !== undefined && cookie.maxAge !== undefined && cookie.maxAge > 0, 'the new cookie persists')
  t.equal(JSON.parse(await client.get(sessionKey(prefix, idOf(browser.cookie!))) as string).p, 1, 'the successor is remembered')
  await loggedOutEverywhere(t, app, browser, 42)
})

test('a user change after a rotation, then another rotation: the index follows the new user', async (t) => {
  const { app, client, prefix } = await indexedApp(t)
  const browser = new Browser()
  await browser.send(app, 'POST', '/login', { uid: 42 })
  await rotate(t, app, client, prefix, browser)
  await browser.send(app, 'POST', '/write', { uid: 43 })
  t.same(await app.sessions.list(42), [], 'no longer 42\'s')
  t.equal((await app.sessions.list(43)).length, 1, 'now 43\'s')
  await rotate(t, app, client, prefix, browser)
  t.same(await app.sessions.list(42), [])
  t.equal(await app.sessions.destroyAll(42), 0, 'the former user\'s destroyAll leaves it alone')
  t.equal((await browser.send(app, 'GET', '/read')).json().isNew, false)
  await loggedOutEverywhere(t, app, browser, 43)
})

test('a user set by a request in flight across a rotation: the successor joins that user\'s index', async (t) => {
  const gate = new Gate()
  const { app, client, prefix } = await buildApp(t, {
    session: { userKey: 'uid', rotateEvery: 60, trackClient: true },
    routes: (app) => {
      app.post('/slow-sign-in', async (req) => {
        req.session.set('uid', 42)
        await gate.hold()
        return 'ok'
      })
    }
  })
  const browser = new Browser('phone/1.0')
  await browser.send(app, 'POST', '/write', { cart: 1 })
  const slow = browser.send(app, 'POST', '/slow-sign-in')
  await gate.reached(1)
  const rotated = await rotate(t, app, client, prefix, browser)
  gate.open()
  const res = await slow
  t.equal(res.statusCode, 200)
  t.equal(idOf(browser.cookie!), rotated, 'saved to the successor')
  t.same((await browser.send(app, 'GET', '/read')).json().data, { cart: 1, uid: 42 })
  t.same((await app.sessions.list(42)).map(s => s.userAgent), ['phone/1.0'], 'listed, with its client')
  await loggedOutEverywhere(t, app, browser, 42)
})
