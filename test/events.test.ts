import { test, type Test } from 'tap'
import diagnostics from 'node:diagnostics_channel'
import { buildApp, sessionCookie, sessionKey, hashedId } from './helpers/app.js'
import { loginRoute, logoutRoute } from './helpers/routes.js'
import { channels } from '../lib/index.js'

type Name = keyof typeof channels
interface Seen { name: Name, message: Record<string, unknown> }

/** Subscribes to every channel until the test ends; `take()` returns what was published since the last call. */
function listen (t: Test): { take: () => Seen[], all: Seen[] } {
  let seen: Seen[] = []
  const all: Seen[] = []
  for (const name of Object.keys(channels) as Name[]) {
    const listener = (message: unknown): void => {
      seen.push({ name, message: message as Record<string, unknown> })
      all.push({ name, message: message as Record<string, unknown> })
    }
    diagnostics.subscribe(channels[name], listener)
    t.teardown(() => { diagnostics.unsubscribe(channels[name], listener) })
  }
  return {
    all,
    take () {
      const taken = seen
      seen = []
      return taken
    }
  }
}

/** The events without their durations, which are checked to be numbers and then left out. */
function shapes (t: Test, seen: Seen[]): Array<[Name, Record<string, unknown>]> {
  return seen.map(({ name, message }) => {
    const { durationMs, ...rest } = message
    if (name === 'load' || name === 'save') t.ok(typeof durationMs === 'number' && durationMs >= 0, `${name} has a duration`)
    else t.equal(durationMs, undefined)
    return [name, rest]
  })
}

test('channel names', async (t) => {
  t.same(channels, {
    load: 'fastify-session-redis:load',
    save: 'fastify-session-redis:save',
    conflict: 'fastify-session-redis:conflict',
    create: 'fastify-session-redis:create',
    destroy: 'fastify-session-redis:destroy',
    regenerate: 'fastify-session-redis:regenerate',
    expired: 'fastify-session-redis:expired',
    cache: 'fastify-session-redis:cache'
  })
})

test('create, load, save, regenerate and destroy of real requests, with hints only', async (t) => {
  const events = listen(t)
  const { app, client, prefix } = await buildApp(t, {
    routes: (app) => {
      loginRoute(app, ['n'])
      logoutRoute(app)
      app.post('/ttl', async (req) => { req.session.setTtl(60); return 'ok' })
      app.post('/fresh-login', async (req) => { await req.session.regenerate(); return 'ok' })
    }
  })
  const created = await app.inject({ method: 'POST', url: '/increment' })
  const cookie = sessionCookie(created)
  const id = (await app.inject({ url: '/read', headers: { cookie } })).json().id as string
  const hint = hashedId(id).slice(0, 8)
  t.not(hint, id.slice(0, 8), 'a hint of the hashed id: nothing of the id itself')
  const stored = await client.get(sessionKey(prefix, id)) as string
  const bytes = Buffer.byteLength(stored)
  const seen = events.take()
  t.same(shapes(t, seen), [
    ['save', { idHint: hint, outcome: 'saved', isNew: true, version: 1, bytes }],
    ['create', { idHint: hint, bytes }],
    ['load', { idHint: hint, outcome: 'found', version: 1, bytes }]
  ])

  await app.inject({ method: 'POST', url: '/increment', headers: { cookie } })
  const after = Buffer.byteLength(await client.get(sessionKey(prefix, id)) as string)
  t.same(shapes(t, events.take()), [
    ['load', { idHint: hint, outcome: 'found', version: 1, bytes }],
    ['save', { idHint: hint, outcome: 'saved', isNew: false, version: 2, bytes: after }]
  ])

  // a session with its own TTL is loaded and then given it (a second round trip): still found
  await app.inject({ method: 'POST', url: '/ttl', headers: { cookie } })
  events.take()
  await app.inject({ url: '/read', headers: { cookie } })
  t.same(shapes(t, events.take()).map(([name, message]) => [name, message.outcome, message.version]), [['load', 'found', 3]])

  const login = await app.inject({ method: 'POST', url: '/login', headers: { cookie }, payload: { user: 'ann' } })
  const newId = login.json().id as string
  const seenLogin = shapes(t, events.take())
  t.same(seenLogin.map(([name]) => name), ['load', 'regenerate', 'save', 'create'])
  t.same(seenLogin[1], ['regenerate', { idHint: hashedId(newId).slice(0, 8), previousHint: hint, kept: 1 }])
  t.same(seenLogin[2][1].isNew, true)

  await app.inject({ method: 'POST', url: '/logout', headers: { cookie: sessionCookie(login) } })
  t.same(shapes(t, events.take()).map(([name, message]) => [name, message]).slice(1), [['destroy', { idHint: hashedId(newId).slice(0, 8), by: 'session' }]])

  // a session never stored has no previous id to hint at; nothing kept, nothing stored
  await app.inject({ method: 'POST', url: '/fresh-login' })
  const [regenerated] = shapes(t, events.take())
  t.equal(regenerated[0], 'regenerate')
  t.equal(regenerated[1].kept, 0)
  t.notOk('previousHint' in regenerated[1])

  t.equal(events.all.length, 15, 'every event of the test is checked below')
  for (const { message } of events.all) {
    const text = JSON.stringify(message)
    t.notOk(text.includes(id) || text.includes(newId), 'no full id')
    t.notOk(text.includes(cookie.slice(4)), 'no cookie')
    t.notOk(text.includes('ann'), 'no data')
  }
})

test('expired: a missing session and one past its deadline; invalid: one that cannot be read', async (t) => {
  const events = listen(t)
  const { app, client, prefix } = await buildApp(t)
  const login = async (): Promise<{ cookie: string, id: string }> => {
    const res = await app.inject({ method: 'POST', url: '/write', payload: { a: 1 } })
    return { cookie: sessionCookie(res), id: res.json().id }
  }
  const missing = await login()
  await client.del(sessionKey(prefix, missing.id))
  const past = await login()
  await client.set(sessionKey(prefix, past.id), `{"v":1,"a":${Date.now() - 1000},"t":0,"c":0,"f":{},"d":{}}`)
  const corrupt = await login()
  await client.set(sessionKey(prefix, corrupt.id), 'not json')
  events.take()
  for (const { cookie } of [missing, past, corrupt]) await app.inject({ url: '/read', headers: { cookie } })
  t.same(shapes(t, events.take()), [
    ['expired', { idHint: hashedId(missing.id).slice(0, 8), reason: 'missing' }],
    ['load', { idHint: hashedId(missing.id).slice(0, 8), outcome: 'missing', version: 0, bytes: 0 }],
    ['expired', { idHint: hashedId(past.id).slice(0, 8), reason: 'deadline' }],
    ['load', { idHint: hashedId(past.id).slice(0, 8), outcome: 'expired', version: 0, bytes: 0 }],
    ['load', { idHint: hashedId(corrupt.id).slice(0, 8), outcome: 'invalid', version: 0, bytes: 0 }]
  ])
  t.equal(await client.exists(sessionKey(prefix, past.id)), 0, 'deleted')
})

test('conflict: a save that met a newer version replays; a failed save names its code', async (t) => {
  const events = listen(t)
  const { app, client, prefix } = await buildApp(t, { session: { maxBytes: 400 } })
  const res = await app.inject({ method: 'POST', url: '/increment' })
  const cookie = sessionCookie(res)
  const held = await app.sessions.fromHeaders({ cookie })
  await app.inject({ method: 'POST', url: '/increment', headers: { cookie } })
  events.take()
  held.increment('n')
  await held.save()
  t.equal(held.get('n'), 3)
  const hint = hashedId(held.id).slice(0, 8)
  t.same(shapes(t, events.take()).map(([name, message]) => [name, message]), [
    ['conflict', { idHint: hint, attempt: 1, requests: 1 }],
    ['save', { idHint: hint, outcome: 'saved', isNew: false, version: 3, bytes: Buffer.byteLength(await client.get(sessionKey(prefix, held.id)) as string) }]
  ])

  const big = await app.inject({ method: 'POST', url: '/write', headers: { cookie }, payload: { blob: 'x'.repeat(500) } })
  t.equal(big.statusCode, 507)
  const failed = shapes(t, events.take()).filter(([name]) => name === 'save')
  t.same(failed, [['save', { idHint: hint, outcome: 'failed', code: 'FST_REDIS_SESSION_TOO_LARGE', isNew: false, version: 0, bytes: 0 }]])
})

test('destroy by app.sessions: destroy and destroyAll', async (t) => {
  const events = listen(t)
  const { app } = await buildApp(t, { session: { userKey: 'user' } })
  const ids: string[] = []
  for (let i = 0; i < 3; i++) ids.push((await app.inject({ method: 'POST', url: '/write', payload: { user: 'ann' } })).json().id)
  events.take()
  t.equal(await app.sessions.destroy(ids[0]), true)
  t.equal(await app.sessions.destroyAll('ann'), 2)
  const destroyed = shapes(t, events.take())
  t.same(destroyed[0], ['destroy', { idHint: hashedId(ids[0]).slice(0, 8), by: 'admin' }])
  t.same(destroyed.slice(1).map(([, message]) => message.idHint).sort(), ids.slice(1).map(id => hashedId(id).slice(0, 8)).sort())
  t.same(destroyed.map(([name, message]) => [name, message.by]), [['destroy', 'admin'], ['destroy', 'admin'], ['destroy', 'admin']])
})

test('with no subscriber nothing is published', async (t) => {
  let published = 0
  for (const name of Object.values(channels)) {
    const channel = diagnostics.channel(name)
    t.equal(channel.hasSubscribers, false, name)
    const original = channel.publish
    channel.publish = function counted (message: unknown) {
      published++
      original.call(channel, message)
    }
    t.teardown(() => { channel.publish = original })
  }
  const { app } = await buildApp(t, {
    routes: (app) => {
      app.post('/regenerate', async (req) => { await req.session.regenerate(['n']); return 'ok' })
      app.post('/destroy', async (req) => { await req.session.destroy(); return 'ok' })
    }
  })
  const res = await app.inject({ method: 'POST', url: '/increment' })
  const cookie = sessionCookie(res)
  const id = (await app.inject({ url: '/read', headers: { cookie } })).json().id
  const held = await app.sessions.fromHeaders({ cookie })
  await app.inject({ method: 'POST', url: '/increment', headers: { cookie } })
  held.increment('n')
  await held.save()
  const regenerated = await app.inject({ method: 'POST', url: '/regenerate', headers: { cookie } })
  await app.inject({ method: 'POST', url: '/destroy', headers: { cookie: sessionCookie(regenerated) } })
  await app.inject({ url: '/read', headers: { cookie } })
  t.equal(await app.sessions.destroy(id), false)
  t.equal(app.sessions.stats().conflicts, 1, 'a conflict happened')
  t.equal(published, 0)
})
