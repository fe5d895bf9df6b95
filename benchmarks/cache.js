// The local cache (docs/local-cache.md) beyond the hot-session read of bench.js:
// - mix: 10,000 sessions read with skewed (Zipf) popularity, the plugin with and without `cache`
//   in interleaved rounds over HTTP, with the cache's hit rate;
// - memory: heap per cached session;
// - revocation: how long after a logout, regenerate, destroyAll, sessions.destroy or write on
//   instance A returns, instance B stops answering the old session from its cache (p50, p99, max).
//   node benchmarks/cache.js [--rounds 5] [--revocations 1000] [--sessions 10000] [--skip-mix]
// Loopback only; every loop is bounded in count and time.
import { fork } from 'node:child_process'
import { parseArgs } from 'node:util'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { fileURLToPath } from 'node:url'
import { loadavg } from 'node:os'
import autocannon from 'autocannon'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { startRedisServer } from '../tools/redis-server.js'
import { SECRET } from './contestants.js'

const { values: opts } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    duration: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
    sessions: { type: 'string', default: '10000' },
    revocations: { type: 'string', default: '1000' },
    lease: { type: 'string', default: '500' },
    'skip-mix': { type: 'boolean', default: false }
  }
})
const ROUNDS = Number(opts.rounds)
const SESSIONS = Number(opts.sessions)
const REVOCATIONS = Number(opts.revocations)
const LEASE = Number(opts.lease)
const CONNECTIONS = Number(opts.connections)
const PLUGIN = new URL('../dist/index.js', import.meta.url).href
const started = Date.now()

function log (...args) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s]`, ...args)
}

/** A deterministic generator (mulberry32), so each run reads the same sequence. */
function random (seed) {
  return () => {
    seed = (seed + 0x6D2B79F5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** `count` draws of ranks 0..n-1 with probability ∝ 1/(rank+1) (Zipf, s = 1). */
function zipf (n, count, next) {
  const cumulative = new Float64Array(n)
  let total = 0
  for (let i = 0; i < n; i++) cumulative[i] = (total += 1 / (i + 1))
  const draws = new Array(count)
  for (let d = 0; d < count; d++) {
    const x = next() * total
    let lo = 0
    let hi = n - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (cumulative[mid] < x) lo = mid + 1
      else hi = mid
    }
    draws[d] = lo
  }
  return draws
}

function percentile (sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]
}

// ---- mix -------------------------------------------------------------------------------------

async function startServer (contestant, redisUrl) {
  const args = JSON.stringify({ contestant, redisUrl, prefix: `${contestant}:` })
  const child = fork(fileURLToPath(new URL('server.js', import.meta.url)), [args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const waiting = new Map()
  child.on('message', (message) => {
    const resolve = waiting.get(message.type)
    waiting.delete(message.type)
    resolve?.(message)
  })
  const ask = (type) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${contestant}: no '${type}' answer`)), 30_000)
    waiting.set(type, (message) => { clearTimeout(timer); resolve(message) })
    if (type !== 'ready') child.send({ type })
  })
  const { port } = await ask('ready')
  return { contestant, url: `http://127.0.0.1:${port}`, ask, close: () => child.send({ type: 'close' }) }
}

async function makeSessions (server, count) {
  const cookies = []
  while (cookies.length < count) {
    const batch = await Promise.all(Array.from({ length: Math.min(50, count - cookies.length) }, async () => {
      const res = await fetch(`${server.url}/setup?with=object`, { method: 'POST' })
      await res.arrayBuffer()
      return res.headers.get('set-cookie').split(';')[0]
    }))
    cookies.push(...batch)
  }
  return cookies
}

/**
 * Reads `cookies[rank]` for each of `ranks` over HTTP, each connection its own share in order
 * (rank i to connection i % CONNECTIONS); `limit` is autocannon's `duration` or `amount`.
 */
async function reads (server, cookies, ranks, limit) {
  let next = 0
  const result = await autocannon({
    url: server.url,
    connections: CONNECTIONS,
    ...limit,
    setupClient: (client) => {
      const own = next++
      client.setRequests(ranks.filter((_, i) => i % CONNECTIONS === own).map(rank => ({ method: 'GET', path: '/read-object', headers: { cookie: cookies[rank] } })))
    }
  })
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${server.contestant}: ${result.non2xx} non-2xx answers, ${result.errors} errors`)
  return result
}

/** One timed run of the skewed read mix. */
async function mixRun (server, cookies, draws, seconds) {
  await server.ask('reset')
  // the plugin's counters run from its start: this run's are the difference
  const before = (await server.ask('stats')).sessions
  const result = await reads(server, cookies, draws, { duration: seconds })
  const stats = await server.ask('stats')
  // what the run's misses came from: a lease that ran out shows here, the rest were expiries or caps
  const since = (name) => stats.sessions[name] - before[name]
  const sessions = before === undefined ? undefined : { cacheHits: since('cacheHits'), cacheMisses: since('cacheMisses'), cacheLeaseExpiries: since('cacheLeaseExpiries') }
  return { rps: result.requests.average, cpuPerRequest: stats.cpuMicros / stats.served, sessions }
}

/** Reads every session twice: the first load after its save is the rolling GETEX, which keeps nothing, the second is kept. */
async function warmRun (server, cookies) {
  const ranks = [...cookies.keys(), ...cookies.keys()]
  await reads(server, cookies, ranks, { amount: ranks.length })
}

async function mix () {
  const redis = await startRedisServer()
  const names = ['plugin-ap', 'plugin-cache']
  const servers = []
  for (const name of names) servers.push(await startServer(name, redis.url))
  const draws = zipf(SESSIONS, 200_000, random(42))
  const distinct = new Set(draws).size
  const cookies = {}
  for (const server of servers) cookies[server.contestant] = await makeSessions(server, SESSIONS)
  log(`mix: ${SESSIONS} sessions each; ${draws.length} draws touch ${distinct} of them; the 100 most read take ${(draws.filter(r => r < 100).length / draws.length * 100).toFixed(0)}%`)
  const runs = Object.fromEntries(names.map(n => [n, []]))
  for (const server of servers) await warmRun(server, cookies[server.contestant])
  for (const server of servers) await mixRun(server, cookies[server.contestant], draws, 1)
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? servers : [...servers].reverse()
    for (const server of order) {
      const run = await mixRun(server, cookies[server.contestant], draws, Number(opts.duration))
      runs[server.contestant].push(run)
      const { cacheHits: hits = 0, cacheMisses: misses = 0, cacheLeaseExpiries: expiries = 0 } = run.sessions ?? {}
      const rate = hits + misses === 0 ? '' : `  hit rate ${(hits / (hits + misses) * 100).toFixed(1)}%, ${expiries} lease expiries`
      log(`mix round ${round + 1} ${server.contestant.padEnd(13)} ${run.rps.toFixed(0).padStart(6)} req/s  ${run.cpuPerRequest.toFixed(1)} µs CPU/req${rate}`)
    }
  }
  for (const server of servers) server.close()
  await redis.kill()
  const median = (list) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)]
  const rps = Object.fromEntries(names.map(n => [n, median(runs[n].map(r => r.rps))]))
  const cpu = Object.fromEntries(names.map(n => [n, median(runs[n].map(r => r.cpuPerRequest))]))
  const cached = runs['plugin-cache'].map(r => r.sessions)
  const hits = cached.reduce((a, s) => a + s.cacheHits, 0)
  const misses = cached.reduce((a, s) => a + s.cacheMisses, 0)
  return { rps, cpu, ratio: rps['plugin-cache'] / rps['plugin-ap'], cpuRatio: cpu['plugin-ap'] / cpu['plugin-cache'], hitRate: hits / (hits + misses), distinct }
}

// ---- in-process apps: memory and revocation ---------------------------------------------------

async function buildApp (redisUrl, prefix, cache) {
  const { default: redisSession } = await import(PLUGIN)
  const client = new Redis(redisUrl)
  const app = Fastify()
  await app.register(redisSession, { client, secret: SECRET, prefix, userKey: 'user', cache })
  app.post('/login', async (req) => {
    req.session.set('user', String(req.query.user))
    req.session.set('cart', { items: [{ sku: 'A-1', qty: 2, price: 9.5 }, { sku: 'B-22', qty: 1, price: 24 }], total: 43, currency: 'EUR' })
    req.session.set('n', 0)
    return { id: req.session.id }
  })
  app.get('/me', async (req) => ({ user: req.session.get('user') ?? null, n: req.session.get('n') ?? null }))
  app.post('/logout', async (req) => { await req.session.destroy(); return 'ok' })
  app.post('/regenerate', async (req) => { await req.session.regenerate(); return 'ok' })
  app.post('/write', async (req) => { req.session.set('n', Number(req.query.n)); return 'ok' })
  app.addHook('onClose', async () => { client.disconnect() })
  return app
}

const cookieOf = (res) => res.headers['set-cookie'].split(';')[0]

function heapUsed () {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc')
  for (let i = 0; i < 3; i++) gc()
  return process.memoryUsage().heapUsed
}

/** Reads `cookie` on `app` until its cache answers (its lease proven, the entry kept); bounded. */
async function untilCached (app, cookie) {
  for (let tries = 0; tries < 100; tries++) {
    const hits = app.sessions.stats().cacheHits
    await app.inject({ url: '/me', headers: { cookie } })
    if (app.sessions.stats().cacheHits > hits) return
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  throw new Error('the cache never answered')
}

/**
 * Reads every session once. A hit needs no I/O, so injected requests alone would never let the
 * event loop reach its setImmediate callbacks (light-my-request schedules one per request): they
 * would pile up and be counted as memory. Every 100 reads, the loop turns once.
 */
async function readAll (app, cookies) {
  for (let i = 0; i < cookies.length; i++) {
    await app.inject({ url: '/me', headers: { cookie: cookies[i] } })
    if (i % 100 === 99) await new Promise(resolve => setImmediate(resolve))
  }
  await new Promise(resolve => setImmediate(resolve))
}

/** Heap per cached session: the same reads with the cache off and on, the difference per session. */
async function memory (redisUrl) {
  const count = Math.min(SESSIONS, 10_000)
  const sizes = {}
  for (const cache of [false, { max: count * 2, lease: 60_000 }]) {
    const app = await buildApp(redisUrl, `memory-${cache === false ? 'off' : 'on'}:`, cache)
    const cookies = []
    for (let i = 0; i < count; i++) cookies.push(cookieOf(await app.inject({ method: 'POST', url: `/login?user=u${i}` })))
    const probe = cookieOf(await app.inject({ method: 'POST', url: '/login?user=probe' }))
    if (cache !== false) await untilCached(app, probe)
    const name = cache === false ? 'off' : 'on'
    // the first load after a save on this instance is the rolling GETEX, which keeps nothing (docs/local-cache.md)
    await readAll(app, cookies)
    const before = heapUsed()
    await readAll(app, cookies)
    sizes[name] = heapUsed() - before
    // a second pass: with the cache all hits, which parse and keep each document beside its text
    const hits = app.sessions.stats().cacheHits
    await readAll(app, cookies)
    sizes[`${name} read twice`] = heapUsed() - before
    if (cache !== false && app.sessions.stats().cacheHits - hits !== count) throw new Error('memory: not every session was cached')
    await app.close()
  }
  return { text: (sizes.on - sizes.off) / count, parsed: (sizes['on read twice'] - sizes['off read twice']) / count, count }
}

/** Starts instance B in its own process: the plugin with `cache`, reading sessions A writes. */
async function startInstanceB (redisUrl, prefix) {
  const args = JSON.stringify({ plugin: PLUGIN, redisUrl, prefix, secret: SECRET, lease: LEASE })
  const child = fork(fileURLToPath(new URL('revocation-server.js', import.meta.url)), [args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const { port } = await new Promise(resolve => child.once('message', resolve))
  return { url: `http://127.0.0.1:${port}/me`, close: () => child.send('close') }
}

/**
 * A logs in, B (another process, with the cache) reads the session until its cache answers; A
 * revokes it (logout, regenerate, destroyAll, sessions.destroy) or writes it; from the moment A's
 * call returns, B is read over HTTP until it no longer answers the old state. The delay includes
 * one HTTP round trip to B (its median is reported as the resolution).
 */
async function revocation (redisUrl) {
  const prefix = 'revocation:'
  const a = await buildApp(redisUrl, prefix, false)
  const b = await startInstanceB(redisUrl, prefix)
  const readB = async (cookie) => {
    const from = performance.now()
    const body = await (await fetch(b.url, { headers: { cookie } })).json()
    return { ...body, ms: performance.now() - from }
  }
  const kinds = ['destroy', 'regenerate', 'destroyAll', 'sessions.destroy', 'write']
  const delays = Object.fromEntries(kinds.map(k => [k, []]))
  const roundTrips = []
  let notCached = 0
  let beyond = 0
  let firstRead = 0
  for (let i = 0; i < REVOCATIONS; i++) {
    const kind = kinds[i % kinds.length]
    const user = `r${i}`
    const login = await a.inject({ method: 'POST', url: `/login?user=${user}` })
    const cookie = cookieOf(login)
    // the cache answers once its lease is proven and the entry kept: up to a few reads, bounded
    let cached = false
    let hits = (await readB(cookie)).hits
    for (let tries = 0; tries < 20 && !cached; tries++) {
      const seen = await readB(cookie)
      cached = seen.hits > hits && seen.user === user
      hits = seen.hits
    }
    if (!cached) { notCached++; continue }
    if (kind === 'destroy') await a.inject({ method: 'POST', url: '/logout', headers: { cookie } })
    else if (kind === 'regenerate') await a.inject({ method: 'POST', url: '/regenerate', headers: { cookie } })
    else if (kind === 'destroyAll') await a.sessions.destroyAll(user)
    else if (kind === 'sessions.destroy') await a.sessions.destroy(login.json().id)
    else await a.inject({ method: 'POST', url: '/write?n=1', headers: { cookie } })
    const revokedAt = performance.now()
    const gone = kind === 'write' ? (body) => body.n === 1 : (body) => body.user === null
    let ms = -1
    for (let reads = 1; performance.now() - revokedAt < 5_000; reads++) {
      const seen = await readB(cookie)
      roundTrips.push(seen.ms)
      if (gone(seen)) {
        ms = performance.now() - revokedAt
        if (reads === 1) firstRead++
        break
      }
    }
    if (ms < 0) beyond++
    else delays[kind].push(ms)
  }
  await a.close()
  b.close()
  const summary = (list) => {
    const sorted = [...list].sort((x, y) => x - y)
    return { count: sorted.length, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: sorted[sorted.length - 1] }
  }
  return { all: summary(Object.values(delays).flat()), byKind: Object.fromEntries(kinds.map(k => [k, summary(delays[k])])), roundTrip: summary(roundTrips).p50, notCached, beyond, firstRead }
}

async function main () {
  log(`load average at start: ${loadavg().map(l => l.toFixed(2)).join(' ')}`)
  if (!opts['skip-mix']) {
    const result = await mix()
    log(`mix: plugin-cache ÷ plugin-ap ${result.ratio.toFixed(2)}× by req/s, ${result.cpuRatio.toFixed(2)}× by CPU; hit rate ${(result.hitRate * 100).toFixed(1)}% (${result.rps['plugin-cache'].toFixed(0)} vs ${result.rps['plugin-ap'].toFixed(0)} req/s)`)
  }
  const redis = await startRedisServer()
  const { text, parsed, count } = await memory(redis.url)
  log(`memory: ${text.toFixed(0)} bytes of heap per cached session read once (its text), ${parsed.toFixed(0)} read twice (text and parsed document); ${count} sessions of a cart, a user and a counter`)
  const revoked = await revocation(redis.url)
  const f = (ms) => `${ms.toFixed(2)} ms`
  log(`revocation (${revoked.all.count} measured, lease ${LEASE} ms, B in its own process): p50 ${f(revoked.all.p50)}, p99 ${f(revoked.all.p99)}, max ${f(revoked.all.max)}; one HTTP read of B takes ${f(revoked.roundTrip)} (median); B's first read after A returned saw it in ${revoked.firstRead}; not cached before: ${revoked.notCached}; beyond 5 s: ${revoked.beyond}`)
  for (const [kind, s] of Object.entries(revoked.byKind)) log(`  ${kind.padEnd(17)} ${String(s.count).padStart(4)}  p50 ${f(s.p50)}  p99 ${f(s.p99)}  max ${f(s.max)}`)
  await redis.kill()
  log(`load average at end: ${loadavg().map(l => l.toFixed(2)).join(' ')}`)
}

await main()
