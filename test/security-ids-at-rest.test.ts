import { test } from 'tap'
import { sign } from '@fastify/cookie'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { SECRET, buildApp, connect, hashedId, keysUnder, sessionKey, sharedRedisUrl, uniquePrefix } from './helpers/app.js'
import { accountApp, Browser } from './helpers/scale.js'
import { monitorRedis } from './helpers/monitor.js'

const INDEXED = { userKey: 'userId', trackClient: true }

/** Routes for the rest of the lifecycle: reload, touch, a session's own TTL, and the admin calls. */
function moreRoutes (app: FastifyInstance): void {
  app.post('/reload', async (req) => {
    await req.session.reload()
    return { id: req.session.id }
  })
  app.post('/touch', async (req) => {
    req.session.touch()
    return { id: req.session.id }
  })
  app.post('/ttl', async (req) => {
    req.session.setTtl(60)
    return { id: req.session.id }
  })
  app.post('/keep-cart', async (req) => {
    await req.session.regenerate(['cart'])
    return { id: req.session.id }
  })
}

/** Remembers every session id a response named, in its body or in its cookie. */
class IdLog {
  readonly ids = new Set<string>()

  see (res: LightMyRequestResponse): LightMyRequestResponse {
    const body = String(res.headers['content-type']).startsWith('application/json') ? res.json() : undefined
    if (typeof body?.id === 'string') this.ids.add(body.id)
    for (const cookie of res.cookies) if (cookie.value !== '') this.ids.add(decodeURIComponent(cookie.value).split('.')[0])
    return res
  }
}

test('no session id ever reaches Redis: every command of a full lifecycle, admin calls included, carries its hash', async (t) => {
  const url = await sharedRedisUrl()
  const client = await connect(t, url)
  await client.ping()
  const monitor = await monitorRedis(t, url)
  const prefix = uniquePrefix()
  const app = await accountApp(t, client, { ...INDEXED, prefix }, moreRoutes)
  // the same sessions through an app without rolling: loads by script, refreshes with touch()
  const still = await accountApp(t, await connect(t, url), { ...INDEXED, prefix, rolling: false }, moreRoutes)
  const log = new IdLog()
  const send = async (browser: Browser, to: FastifyInstance, method: 'GET' | 'POST', path: string, payload?: object): Promise<LightMyRequestResponse> =>
    log.see(await browser.send(to, method, path, payload))

  const laptop = new Browser('laptop/1')
  const phone = new Browser('phone/1')
  const tablet = new Browser('tablet/1')
  await send(laptop, app, 'POST', '/write', { cart: ['book'] })
  await send(laptop, app, 'POST', '/keep-cart')
  await send(laptop, app, 'POST', '/login', { userId: 'ann' })
  await send(phone, app, 'POST', '/login', { userId: 'ann' })
  await send(tablet, app, 'POST', '/login', { userId: 'ann' })
  await send(laptop, app, 'GET', '/me')
  await send(laptop, app, 'POST', '/increment')
  await send(laptop, app, 'POST', '/ttl')
  await send(laptop, app, 'GET', '/me')
  await send(laptop, app, 'POST', '/reload')
  await send(laptop, still, 'GET', '/me')
  await send(laptop, still, 'POST', '/touch')
  await send(laptop, app, 'POST', '/regenerate')
  const laptopId = (await send(laptop, app, 'GET', '/me')).json().id
  const phoneId = (await send(phone, app, 'GET', '/me')).json().id
  const tabletId = (await send(tablet, app, 'GET', '/me')).json().id

  const devices = (await send(laptop, app, 'GET', '/devices')).json()
  t.equal(devices.length, 3, 'list finds every session of the user')
  t.ok(devices.some((d: { idHint: string }) => d.idHint === app.sessions.idHint(laptopId)), 'idHint(id) tells which one is this session')
  t.notOk(devices.some((d: { idHint: string }) => [...log.ids].some(id => id.startsWith(d.idHint))), 'no hint is the start of an id')
  t.same(await app.sessions.get(phoneId), { userId: 'ann' }, 'get takes the id')
  t.equal(await app.sessions.count(), 3, 'count')
  t.equal(await app.sessions.destroy(tabletId), true, 'destroy takes the id')
  t.equal((await send(tablet, app, 'GET', '/me')).json().isNew, true, 'destroyed')
  t.same((await send(laptop, app, 'POST', '/logout-everywhere')).json(), { count: 1 }, 'destroyAll spares the session named by its id in except')
  t.equal((await send(phone, app, 'GET', '/me')).json().isNew, true, 'the phone is logged out')
  t.equal((await send(laptop, app, 'GET', '/me')).json().data.userId, 'ann', 'this one is not')

  // a stored session Redis cannot read is deleted by its hashed key
  await client.set(sessionKey(prefix, laptopId), 'not a session', 'KEEPTTL')
  await send(laptop, app, 'GET', '/me')
  t.equal(await client.exists(sessionKey(prefix, laptopId)), 0, 'the unreadable document is gone')
  await send(laptop, app, 'POST', '/write', { x: 1 })
  await send(laptop, app, 'POST', '/logout')

  const commands = await monitor.take()
  t.ok(log.ids.size >= 8, `every session id the browsers saw (${log.ids.size})`)
  const mine = commands.filter(command => command.args.some(arg => arg.startsWith(prefix)))
  t.ok(mine.length > 30, `Redis ran the test's commands (${mine.length})`)
  const keys = new Set(mine.map(command => command.args[0]))
  for (const id of [laptopId, phoneId, tabletId]) t.ok(keys.has(sessionKey(prefix, id)), 'its session was keyed by the hash of its id')
  const leaks = commands.filter(command => command.args.some(arg => [...log.ids].some(id => arg.includes(id))))
  t.same(leaks, [], 'no command Redis ran holds a session id, not even inside a document or a script argument')
})

test('what Redis holds (keys, documents, user indexes) opens no session', async (t) => {
  const client = await connect(t)
  const prefix = uniquePrefix()
  const app = await accountApp(t, client, { ...INDEXED, prefix })
  const ids: string[] = []
  for (const agent of ['a', 'b']) {
    const browser = new Browser(agent)
    ids.push((await browser.send(app, 'POST', '/login', { userId: 'bob' })).json().id)
  }

  const keys = (await keysUnder(client, prefix)).sort()
  t.same(keys, [...ids.map(id => sessionKey(prefix, id)), `${prefix}user:bob`].sort(), 'keys are the hashes of the ids')
  const members = await client.zrange(`${prefix}user:bob`, '0', '-1')
  t.same(members.sort(), ids.map(hashedId).sort(), 'the index holds the hashes too')
  for (const key of keys) {
    const held = await client.type(key) === 'string' ? await client.get(key) as string : members.join(' ')
    for (const id of ids) t.notOk(held.includes(id), 'no id inside what is stored')
  }

  // whoever read Redis and signs what it found (with the secret, even) gets a fresh session
  for (const stolen of members) {
    const res = await app.inject({ url: '/me', headers: { cookie: `sid=${encodeURIComponent(sign(stolen, SECRET))}` } })
    t.equal(res.json().isNew, true, 'a stored id is no session id')
    t.same(res.json().data, {})
  }
  t.equal(await app.sessions.get(members[0]), null, 'nor does app.sessions take one')
  t.equal(await app.sessions.destroy(members[0]), false)
  t.equal((await app.sessions.list('bob')).length, 2, 'both sessions still live')
})

test('hashIds: false keys sessions by the id itself, as before', async (t) => {
  const client = await connect(t)
  const prefix = uniquePrefix()
  const app = await accountApp(t, client, { ...INDEXED, prefix, hashIds: false })
  const browser = new Browser()
  const id = (await browser.send(app, 'POST', '/login', { userId: 'cy' })).json().id
  t.same((await keysUnder(client, prefix)).sort(), [prefix + id, `${prefix}user:cy`].sort())
  t.same(await client.zrange(`${prefix}user:cy`, '0', '-1'), [id])
  t.same((await app.sessions.list('cy')).map(s => s.idHint), [id.slice(0, 8)])
  t.equal(app.sessions.idHint(id), id.slice(0, 8))
  t.same(await app.sessions.get(id), { userId: 'cy' })
  t.equal((await browser.send(app, 'GET', '/me')).json().data.userId, 'cy')
  t.equal(await app.sessions.destroy(id), true)
  t.equal(await client.exists(prefix + id), 0)
})

test('hashIds must be a boolean', async (t) => {
  const { app } = await buildApp(t, { session: { prefix: uniquePrefix() } })
  await t.rejects(buildApp(t, { session: { hashIds: 'yes' as unknown as boolean } }), { code: 'FST_REDIS_SESSION_INVALID_OPTION', message: /hashIds/ })
  t.ok(app.sessions, 'the default registers')
})
