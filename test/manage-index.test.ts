import { test } from 'tap'
import { connect, uniquePrefix, sharedRedisUrl, sessionKey, hashedId } from './helpers/app.js'
import { accountApp, Browser } from './helpers/scale.js'
import { monitorRedis } from './helpers/monitor.js'
import { waitFor } from './helpers/redis-server.js'

const INDEXED = { userKey: 'userId', trackClient: true }

test('a logged-in session joins its user\'s index; list shows each device', async (t) => {
  const client = await connect(t)
  const prefix = uniquePrefix()
  const app = await accountApp(t, client, { ...INDEXED, prefix, ttl: 3600 })
  const phone = new Browser('phone/1.0')
  const laptop = new Browser('laptop/2.0')
  const before = Date.now()
  const phoneId = (await phone.send(app, 'POST', '/login', { userId: 42 })).json().id
  const laptopId = (await laptop.send(app, 'POST', '/login', { userId: 42 })).json().id

  const list = await app.sessions.list(42)
  t.equal(list.length, 2)
  t.same(list.map(s => s.idHint).sort(), [hashedId(phoneId).slice(0, 8), hashedId(laptopId).slice(0, 8)].sort(), 'hints of the hashed ids')
  t.equal(app.sessions.idHint(phoneId), hashedId(phoneId).slice(0, 8), 'idHint(id) gives the hint of an id one holds')
  t.same(list.map(s => s.userAgent).sort(), ['laptop/2.0', 'phone/1.0'])
  for (const info of list) {
    t.equal(info.ip, '127.0.0.1')
    t.ok(info.createdAt >= before && info.createdAt <= Date.now())
    t.ok(info.expiresAt > Date.now() + 3590_000 && info.expiresAt <= Date.now() + 3601_000, 'idle deadline')
    t.ok(info.lastSeen !== undefined && info.lastSeen >= before - 1000 && info.lastSeen <= Date.now(), 'last seen: this login')
  }
  const hints = (infos: Array<{ idHint: string }>): string[] => infos.map(s => s.idHint)
  t.same(hints(await app.sessions.list('42')), hints(list), 'a number and its string name the same user')
  const phoneSeen = list.find(s => s.userAgent === 'phone/1.0')!.lastSeen!
  const fromRoute = (await phone.send(app, 'GET', '/devices')).json()
  t.same(hints(fromRoute), hints(list), 'from a route')
  t.ok(fromRoute.find((s: { userAgent: string }) => s.userAgent === 'phone/1.0').lastSeen >= phoneSeen, 'the request that loaded the session counts as seen')

  const key = `${prefix}user:42`
  t.equal(await client.type(key), 'zset')
  const setTtl = await client.pttl(key)
  for (const id of [phoneId, laptopId]) {
    const sessionTtl = await client.pttl(sessionKey(prefix, id))
    t.ok(sessionTtl > 3_590_000 && sessionTtl <= 3_600_000 && setTtl >= sessionTtl, `the index outlives the session (PTTL ${setTtl} ms, the session's ${sessionTtl} ms)`)
  }
  t.ok(setTtl > 604_790_000 && setTtl <= 604_801_000, `and no longer than the absolute deadline allows (PTTL ${setTtl} ms)`)
})

test('the index costs a round trip only when a session joins it or changes user', async (t) => {
  const url = await sharedRedisUrl()
  const client = await connect(t, url)
  await client.ping()
  const monitor = await monitorRedis(t, url)
  const app = await accountApp(t, client, { ...INDEXED, prefix: uniquePrefix() }, (app) => {
    app.post('/anonymous', async (req) => { req.session.delete('userId'); return 'ok' })
  })
  // the first run of each script may cost a NOSCRIPT round; count from the second
  const warm = new Browser()
  await warm.send(app, 'POST', '/login', { userId: 6 })
  await warm.send(app, 'POST', '/write', { userId: 5 })
  const browser = new Browser()
  const names = async (): Promise<string[]> => (await monitor.takeFrom(client)).map(c => c.name)
  await names()

  await browser.send(app, 'POST', '/login', { userId: 7 })
  t.same(await names(), ['evalsha', 'evalsha'], 'login: join the index, then save')
  await browser.send(app, 'GET', '/me')
  t.same(await names(), ['getex'], 'read: the load alone')
  await browser.send(app, 'POST', '/write', { x: 1 })
  t.same(await names(), ['getex', 'evalsha'], 'write that keeps the user: load and save')
  await browser.send(app, 'POST', '/write', { userId: 8 })
  t.same(await names(), ['getex', 'evalsha', 'evalsha'], 'new user: load, join, save')
  t.same((await app.sessions.list(7)), [])
  t.equal((await app.sessions.list(8)).length, 1)
  await names()
  await browser.send(app, 'POST', '/anonymous')
  t.same(await names(), ['getex', 'evalsha'], 'user removed: load and save')
  t.same((await app.sessions.list(8)), [])
  await names()
  await browser.send(app, 'POST', '/write', { x: 2 })
  t.same(await names(), ['getex', 'evalsha'])
})

test('without userKey or trackClient nothing changes on the hot path', async (t) => {
  const url = await sharedRedisUrl()
  const client = await connect(t, url)
  await client.ping()
  const monitor = await monitorRedis(t, url)
  const app = await accountApp(t, client, { prefix: uniquePrefix() })
  await new Browser().send(app, 'POST', '/login', { userId: 6 })
  await monitor.take()
  const browser = new Browser()
  await browser.send(app, 'POST', '/login', { userId: 7 })
  t.same((await monitor.takeFrom(client)).map(c => c.name), ['evalsha'])
  const stored = await app.sessions.get((await browser.send(app, 'GET', '/me')).json().id)
  t.same(stored, { userId: 7 })
  await t.rejects(app.sessions.list(7), { code: 'FST_REDIS_SESSION_INVALID_OPTION' })
  await t.rejects(app.sessions.destroyAll(7), { code: 'FST_REDIS_SESSION_INVALID_OPTION' })
})

test('only strings and finite numbers name a user', async (t) => {
  const client = await connect(t)
  const prefix = uniquePrefix()
  const app = await accountApp(t, client, { userKey: 'userId', prefix })
  const browser = new Browser()
  await browser.send(app, 'POST', '/login', { userId: { id: 1 } })
  await browser.send(app, 'POST', '/login', { userId: '' })
  t.same(await client.keys(`${prefix}user:*`), [], 'no index for an object or an empty string')
  await t.rejects(app.sessions.list(''), { code: 'FST_REDIS_SESSION_INVALID_VALUE' })
  await t.rejects(app.sessions.list(Number.NaN), { code: 'FST_REDIS_SESSION_INVALID_VALUE' })
  await t.rejects(app.sessions.destroyAll({} as unknown as string), { code: 'FST_REDIS_SESSION_INVALID_VALUE' })
})

test('destroyAll logs the user out everywhere but here; their cookies get anonymous sessions', async (t) => {
  const client = await connect(t)
  const prefix = uniquePrefix()
  const app = await accountApp(t, client, { userKey: 'userId', prefix })
  const here = new Browser()
  const elsewhere = [new Browser(), new Browser()]
  const other = new Browser()
  await here.send(app, 'POST', '/login', { userId: 'ann' })
  for (const browser of elsewhere) await browser.send(app, 'POST', '/login', { userId: 'ann' })
  await other.send(app, 'POST', '/login', { userId: 'bob' })
  const destroyedBefore = app.sessions.stats().destroyed

  const res = await here.send(app, 'POST', '/logout-everywhere')
  t.same(res.json(), { count: 2 })
  t.equal(app.sessions.stats().destroyed, destroyedBefore + 2)
  for (const browser of elsewhere) {
    const me = (await browser.send(app, 'GET', '/me')).json()
    t.same(me.data, {}, 'logged out')
    t.equal(me.isNew, true)
  }
  t.same((await here.send(app, 'GET', '/me')).json().data, { userId: 'ann' }, 'this session stays')
  t.same((await other.send(app, 'GET', '/me')).json().data, { userId: 'bob' }, 'other users stay')
  t.equal((await app.sessions.list('ann')).length, 1)
  t.equal(await client.zcard(`${prefix}user:ann`), 1, 'the destroyed entries left the index')
  t.equal(await app.sessions.destroyAll('ann'), 1, 'without except: every session')
  t.equal(await app.sessions.destroyAll('ann'), 0)
  t.equal(await client.exists(`${prefix}user:ann`), 0)
})

test('entries of ended sessions are pruned, never returned; young ones wait for their save', async (t) => {
  const client = await connect(t)
  const prefix = uniquePrefix()
  // timeout 200 ms: an entry is old enough to prune 2.4 s after it joined
  const app = await accountApp(t, client, { userKey: 'userId', prefix, timeout: 200 })
  const key = `${prefix}user:u1`
  const live = new Browser()
  const liveId = (await live.send(app, 'POST', '/login', { userId: 'u1' })).json().id
  const loggedOut = new Browser()
  const outId = (await loggedOut.send(app, 'POST', '/login', { userId: 'u1' })).json().id
  await loggedOut.send(app, 'POST', '/logout')
  const moved = new Browser()
  const movedId = (await moved.send(app, 'POST', '/login', { userId: 'u1' })).json().id
  await client.set(sessionKey(prefix, movedId), (await client.get(sessionKey(prefix, movedId)))!.replace('"u":"u1"', '"u":"u2"'))
  const old = String(Date.now() - 60_000)
  const missing = 'M'.repeat(43)
  const young = 'Y'.repeat(43)
  await client.zadd(key, old, missing, String(Date.now()), young, old, 'not an id', old, hashedId(outId), old, hashedId(movedId))
  // entries are stored ids: a session's key is the prefix and its entry
  const corrupt = 'C'.repeat(43)
  await client.set(prefix + corrupt, '{"v":1,"a":1,"t":0,"c":0,"u":"u1","d":{}}')
  const reordered = 'R'.repeat(43)
  await client.set(prefix + reordered, '{"a":1,"v":1,"t":0,"c":0,"u":"u1","d":{}}')
  const garbage = 'G'.repeat(43)
  await client.set(prefix + garbage, 'not json')
  await client.zadd(key, old, corrupt, old, reordered, old, garbage)

  const list = await app.sessions.list('u1')
  t.same(list.map(s => s.idHint), [hashedId(liveId).slice(0, 8)])
  t.same((await client.zrange(key, '0', '-1')).sort(), [hashedId(liveId), young].sort(), 'ended entries removed; the young one kept')
  t.equal(await client.exists(sessionKey(prefix, movedId)), 1, 'a session that moved to another user is left alone')
  t.equal(await app.sessions.destroyAll('u1', { except: liveId }), 0, 'nothing else of u1 to destroy')
})

test('a real expiry: the entry is pruned once the session expired', async (t) => {
  const client = await connect(t)
  const prefix = uniquePrefix()
  const app = await accountApp(t, client, { userKey: 'userId', prefix, ttl: 1, timeout: 200 })
  const browser = new Browser()
  const id = (await browser.send(app, 'POST', '/login', { userId: 'short' })).json().id
  const pttl = await client.pttl(sessionKey(prefix, id))
  t.ok(pttl > 500 && pttl <= 1000, `a 1 s TTL (PTTL ${pttl} ms)`)
  await waitFor('the session to expire', async () => await client.exists(sessionKey(prefix, id)) === 0, { timeout: 10_000 })
  t.equal(await client.exists(sessionKey(prefix, id)), 0, 'expired')
  await waitFor('the index entry to be pruned', async () => {
    if (await client.zscore(`${prefix}user:short`, hashedId(id)) === null) return true
    t.same(await app.sessions.list('short'), [], 'never returned')
    return false
  }, { timeout: 10_000, interval: 100 })
  t.equal(await client.zscore(`${prefix}user:short`, hashedId(id)), null, 'pruned')
})

test('a large index is pruned when a session joins it', async (t) => {
  const client = await connect(t)
  const prefix = uniquePrefix()
  const app = await accountApp(t, client, { userKey: 'userId', prefix, timeout: 200 })
  const key = `${prefix}user:busy`
  const old = Date.now() - 60_000
  const members: string[] = []
  for (let i = 0; i < 70; i++) members.push(String(old), `gone${String(i).padStart(20, '0')}`)
  await client.zadd(key, ...members)
  await new Browser().send(app, 'POST', '/login', { userId: 'busy' })
  t.equal(await client.zcard(key), 1)
})

test('the index lives as long as its longest session, and a later login extends it', async (t) => {
  const client = await connect(t)
  const prefix = uniquePrefix()
  const short = await accountApp(t, client, { userKey: 'userId', prefix, absoluteTtl: 60, ttl: 3600 })
  const long = await accountApp(t, client, { userKey: 'userId', prefix, absoluteTtl: 600, ttl: 3600 })
  const key = `${prefix}user:9`
  await new Browser().send(long, 'POST', '/login', { userId: 9 })
  const first = await client.pttl(key)
  t.ok(first > 599_000 && first <= 601_000)
  await new Browser().send(short, 'POST', '/login', { userId: 9 })
  const second = await client.pttl(key)
  t.ok(second > 599_000 && second <= first, `a shorter session never shortens it, nor extends it (PTTL ${second} ms)`)
  const list = await short.sessions.list(9)
  t.equal(list.length, 2)
  t.equal(list.filter(s => s.lastSeen === undefined).length, 2, 'no last seen while the absolute deadline is nearer')
})

test('last seen follows a session\'s own idle timeout', async (t) => {
  const client = await connect(t)
  const app = await accountApp(t, client, { userKey: 'userId', prefix: uniquePrefix(), ttl: 3600 }, (app) => {
    app.post('/short', async (req) => { req.session.setTtl(120); return 'ok' })
  })
  const browser = new Browser()
  await browser.send(app, 'POST', '/login', { userId: 'own' })
  const before = Date.now()
  await browser.send(app, 'POST', '/short')
  const [info] = await app.sessions.list('own')
  t.ok(info.expiresAt >= before + 119_000 && info.expiresAt <= Date.now() + 120_000, 'the session\'s own timeout')
  t.ok(info.lastSeen! >= before - 1000 && info.lastSeen! <= Date.now(), 'seen at the last request')
})

test('trackClient keeps ip and user agent as of the last save', async (t) => {
  const client = await connect(t)
  const prefix = uniquePrefix()
  const app = await accountApp(t, client, { trackClient: true, prefix })
  const browser = new Browser('first/1')
  const id = (await browser.send(app, 'POST', '/login', { userId: 1 })).json().id
  t.match(await client.get(sessionKey(prefix, id)), /"c":\d+,"ip":"127\.0\.0\.1","ua":"first\/1",/)
  const res = await app.inject({ method: 'POST', url: '/write', headers: { cookie: browser.cookie!, 'user-agent': 'second/2' }, payload: { x: 1 } })
  t.equal(res.statusCode, 200)
  t.match(await client.get(sessionKey(prefix, id)), /"ua":"second\/2"/)
  await app.inject({ method: 'GET', url: '/me', headers: { cookie: browser.cookie!, 'user-agent': 'third/3' } })
  t.match(await client.get(sessionKey(prefix, id)), /"ua":"second\/2"/, 'a read does not write')
  t.equal(await client.keys(`${prefix}user:*`).then(keys => keys.length), 0, 'no index without userKey')
})

test('userKey and trackClient are validated', async (t) => {
  const client = await connect(t)
  await t.rejects(accountApp(t, client, { userKey: '' }), { code: 'FST_REDIS_SESSION_INVALID_OPTION', message: /userKey/ })
  await t.rejects(accountApp(t, client, { trackClient: 'yes' as unknown as boolean }), { code: 'FST_REDIS_SESSION_INVALID_OPTION', message: /trackClient/ })
})
