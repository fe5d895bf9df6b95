import { test, type Test } from 'tap'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import type { Redis } from 'ioredis'
import { buildApp, connect, sessionCookie, uniquePrefix, type BuildOptions, sessionKey } from './helpers/app.js'
import { startRedis, type RedisServer } from './helpers/redis-server.js'

const PARALLEL = 100

let server: Promise<RedisServer> | undefined

/** A Redis private to this file, so its command counters see only the running test's traffic. */
async function privateClient (t: Test): Promise<Redis> {
  server ??= startRedis()
  return await connect(t, (await server).url)
}

/** Calls per command since the last CONFIG RESETSTAT; commands run by scripts count too. */
async function commandCalls (client: Redis): Promise<Record<string, number>> {
  const calls: Record<string, number> = {}
  for (const match of (await client.info('commandstats')).matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)) {
    calls[match[1]] = Number(match[2])
  }
  return calls
}

/**
 * What the save script did during a burst of PARALLEL requests that each loaded the stored session
 * once (with GETEX): every save attempt is one script call, which writes with SET … GET; a conflict
 * also reads the clock (TIME) and puts the other writer's document back with a second SET.
 */
async function saveCounts (client: Redis, t: Test, label: string): Promise<{ attempts: number, writes: number, conflicts: number }> {
  const calls = await commandCalls(client)
  t.equal(calls.getex, PARALLEL, `${label}: one load per request`)
  const attempts = (calls.evalsha ?? 0) + (calls.eval ?? 0)
  const conflicts = calls.time ?? 0
  t.equal(calls.set, attempts + conflicts, `${label}: one SET per attempt, one more per conflict`)
  const counts = { attempts, writes: attempts - conflicts, conflicts }
  t.comment(`${label}: ${PARALLEL} requests, ${counts.writes} writes, ${counts.attempts} save attempts, ${counts.conflicts} conflicts (each one retried)`)
  return counts
}

/** The plugin's own counters, summed over the instances: they must agree with what Redis saw. */
function assertPluginCounters (t: Test, apps: FastifyInstance[], conflicts: number): void {
  const stats = apps.map(app => app.sessions.stats())
  const sum = (name: 'conflicts' | 'saved'): number => stats.reduce((total, s) => total + s[name], 0)
  t.comment(`plugin counters: ${sum('saved')} requests saved (1 before the burst), ${sum('conflicts')} conflicts`)
  t.same({ saved: sum('saved'), conflicts: sum('conflicts') }, { saved: 1 + PARALLEL, conflicts })
}

/** Two plugin instances with their own ioredis connections, sharing one Redis and one key prefix. */
async function twoApps (t: Test, client: Redis, extra: BuildOptions = {}): Promise<[FastifyInstance, FastifyInstance, string]> {
  const prefix = uniquePrefix()
  const url = `redis://127.0.0.1:${client.options.port}`
  const { app: a } = await buildApp(t, { ...extra, client: await connect(t, url), session: { ...extra.session, prefix } })
  const { app: b } = await buildApp(t, { ...extra, client: await connect(t, url), session: { ...extra.session, prefix } })
  return [a, b, prefix]
}

/** Starts all requests at once, alternating between the apps, and waits for every response. */
function burst (apps: FastifyInstance[], request: (i: number) => InjectOptions): Promise<LightMyRequestResponse[]> {
  return Promise.all(Array.from({ length: PARALLEL }, (_, i) => apps[i % apps.length].inject(request(i))))
}

function statusCodes (responses: Array<{ statusCode: number }>): number[] {
  return [...new Set(responses.map(res => res.statusCode))]
}

async function storedDocument (client: Redis, key: string): Promise<{ v: number, f?: Record<string, string[]>, d: Record<string, unknown> }> {
  const text = await client.get(key)
  if (text === null) throw new Error(`${key} is not stored`)
  return JSON.parse(text)
}

/** A stored session holding n = 0, and the cookie that names it. */
async function counterSession (app: FastifyInstance): Promise<{ cookie: string, id: string }> {
  const first = await app.inject({ method: 'POST', url: '/write', payload: { n: 0 } })
  return { cookie: sessionCookie(first), id: first.json().id }
}

test('100 parallel increments on one app: n is exactly 100', async (t) => {
  const client = await privateClient(t)
  const { app, prefix } = await buildApp(t, { client })
  const { cookie, id } = await counterSession(app)
  await client.config('RESETSTAT')

  const responses = await burst([app], () => ({ method: 'POST', url: '/increment', headers: { cookie } }))
  t.same(statusCodes(responses), [200])
  const { writes, conflicts } = await saveCounts(client, t, 'one app')
  assertPluginCounters(t, [app], conflicts)
  const stored = await storedDocument(client, sessionKey(prefix, id))
  t.equal(stored.d.n, PARALLEL)
  t.equal(stored.v, 1 + writes, 'the version counts the writes')
  t.ok(writes < PARALLEL, 'saves waiting behind one in flight were merged into fewer writes')
})

test('100 parallel increments over two app instances on one Redis: n is exactly 100', async (t) => {
  const client = await privateClient(t)
  const [a, b, prefix] = await twoApps(t, client)
  const { cookie, id } = await counterSession(a)
  await client.config('RESETSTAT')

  const responses = await burst([a, b], () => ({ method: 'POST', url: '/increment', headers: { cookie } }))
  t.same(statusCodes(responses), [200])
  const { writes, conflicts } = await saveCounts(client, t, 'two apps')
  assertPluginCounters(t, [a, b], conflicts)
  const stored = await storedDocument(client, sessionKey(prefix, id))
  t.equal(stored.d.n, PARALLEL)
  t.equal(stored.v, 1 + writes)
})

test('100 parallel fetch calls to a listening server: n is exactly 100', async (t) => {
  const client = await privateClient(t)
  const { app, prefix } = await buildApp(t, { client })
  const { cookie, id } = await counterSession(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/increment`
  await client.config('RESETSTAT')

  const responses = await Promise.all(Array.from({ length: PARALLEL }, async () => {
    const res = await fetch(url, { method: 'POST', headers: { cookie } })
    await res.arrayBuffer()
    return { statusCode: res.status }
  }))
  t.same(statusCodes(responses), [200])
  assertPluginCounters(t, [app], (await saveCounts(client, t, 'listening server')).conflicts)
  t.equal((await storedDocument(client, sessionKey(prefix, id))).d.n, PARALLEL)
})

test('100 parallel requests each setting its own key: all 100 keys land', async (t) => {
  const client = await privateClient(t)
  const [a, b, prefix] = await twoApps(t, client)
  const { cookie, id } = await counterSession(a)

  const responses = await burst([a, b], (i) => ({ method: 'POST', url: '/write', headers: { cookie }, payload: { ['k' + i]: i } }))
  t.same(statusCodes(responses), [200])
  const expected: Record<string, number> = { n: 0 }
  for (let i = 0; i < PARALLEL; i++) expected['k' + i] = i
  t.same((await storedDocument(client, sessionKey(prefix, id))).d, expected)
  const read = await b.inject({ url: '/read', headers: { cookie } })
  t.same(read.json().data, expected)
})

test('100 parallel flash messages all land, and each is read exactly once', async (t) => {
  const client = await privateClient(t)
  const routes = (app: FastifyInstance): void => {
    app.post('/flash/:i', async (req) => {
      req.session.flash('info', `message ${(req.params as { i: string }).i}`)
      return 'ok'
    })
    app.get('/flash', async (req) => req.session.flash('info'))
  }
  const [a, b] = await twoApps(t, client, { routes })
  const { cookie } = await counterSession(a)

  const responses = await burst([a, b], (i) => ({ method: 'POST', url: `/flash/${i}`, headers: { cookie } }))
  t.same(statusCodes(responses), [200])
  const sent = Array.from({ length: PARALLEL }, (_, i) => `message ${i}`)
  const first = await a.inject({ url: '/flash', headers: { cookie } })
  t.same([...first.json()].sort(), [...sent].sort(), 'every message, once')
  const second = await b.inject({ url: '/flash', headers: { cookie } })
  t.same(second.json(), [], 'a flash is gone once read')
})

test('parallel sets of one key with large values: one value wins whole, the stored JSON is never a mix', async (t) => {
  const client = await privateClient(t)
  const [a, b, prefix] = await twoApps(t, client)
  const { cookie, id } = await counterSession(a)
  const key = sessionKey(prefix, id)
  // 24 kB each, told apart by every character
  const values = Array.from({ length: PARALLEL }, (_, i) => String(i).padStart(3, '0').repeat(8000))
  const sent = new Set(values)

  let done = false
  const requests = burst([a, b], (i) => ({ method: 'POST', url: '/write', headers: { cookie }, payload: { big: values[i] } }))
    .finally(() => { done = true })
  // a third connection reads the key while the writes land: every read must parse and hold a sent value
  const observer = await connect(t, `redis://127.0.0.1:${client.options.port}`)
  const seen: unknown[] = []
  for (let polls = 0; polls < 2000; polls++) {
    if (done) break
    const text = await observer.get(key)
    if (text !== null) seen.push(JSON.parse(text).d.big)
  }
  const responses = await requests
  t.same(statusCodes(responses), [200])
  t.ok(seen.length > 0)
  t.ok(seen.every(value => value === undefined || sent.has(value as string)), 'every read held one whole value')
  const stored = await storedDocument(client, key)
  t.ok(sent.has(stored.d.big as string), 'the stored value is one of those written')
  t.same(Object.keys(stored.d).sort(), ['big', 'n'])
})
