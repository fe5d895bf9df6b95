// Runs every contestant on identical routes, in interleaved rounds, against a private Redis.
// Entry point: run.js (which installs and builds first). Options: see usage() below.
import { fork, spawnSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { loadavg, availableParallelism } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import autocannon from 'autocannon'
import { Redis } from 'ioredis'
import { Signer } from '@fastify/cookie'
import { contestants, addBaseline, SECRET, TTL } from './contestants.js'
import { buildBaseline } from './baselines.js'
import { startRedis, commandCalls, cpuSeconds, keysUnder, medianMemory, fill } from './redis.js'
import { writeReport } from './report.js'
import { summarize } from './profile.js'

const here = fileURLToPath(new URL('.', import.meta.url))

function usage () {
  return `npm run bench [-- options]
  --quick                 a smoke run: 1 round of 1 s, small scale levels; writes to benchmarks/results/
  --rounds N              interleaved rounds (default 7; the scale runs take at most 3)
  --duration S            seconds measured per run (default 2)
  --slices N              each run measured in N turns, in rotation with the other contestants
                          (default 4)
  --connections N         autocannon connections (default 50)
  --only a,b              contestants (default all): ${Object.keys(contestants).join(', ')}
  --baseline REF[,REF]    adds baseline-<sha> contestants: the plugin as of each commit, set up as plugin-ap
                          (REF+cache: baseline-<sha>-cache, set up as plugin-cache)
                          (built once, under benchmarks/node_modules/.cache/)
  --scenarios a,b         main scenarios (default all): read, read-object, write, untouched, create, big
  --skip-main | --skip-correctness | --skip-scale
  --no-pin                let the scheduler place every process (default: with taskset and 2+ CPUs,
                          the app servers get CPU 0, the load generator and Redis the others)
  --profile               one round with V8's CPU profiler on in each server for the measured window;
                          writes benchmarks/results/profiles/ and prints where the time went
  --max-minutes M         abort if the whole run takes longer (default 42 for 7 rounds, 6 more or less per round)`
}

function parseArgs (argv) {
  const opts = {
    quick: false,
    rounds: 7,
    duration: 2,
    slices: 4,
    warmup: 0.3,
    connections: 50,
    only: null,
    baselines: [],
    scenarios: null,
    main: true,
    correctness: true,
    scale: true,
    profile: false,
    pin: true,
    maxMinutes: undefined
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const next = () => argv[++i]
    if (arg === '--quick') opts.quick = true
    else if (arg === '--rounds') opts.rounds = Number(next())
    else if (arg === '--duration') opts.duration = Number(next())
    else if (arg === '--slices') opts.slices = Number(next())
    else if (arg === '--connections') opts.connections = Number(next())
    else if (arg === '--only') opts.only = next().split(',')
    else if (arg === '--baseline') opts.baselines.push(...next().split(','))
    else if (arg === '--scenarios') opts.scenarios = next().split(',')
    else if (arg === '--skip-main') opts.main = false
    else if (arg === '--skip-correctness') opts.correctness = false
    else if (arg === '--skip-scale') opts.scale = false
    else if (arg === '--profile') opts.profile = true
    else if (arg === '--no-pin') opts.pin = false
    else if (arg === '--max-minutes') opts.maxMinutes = Number(next())
    else {
      console.log(usage())
      process.exit(arg === '--help' ? 0 : 1)
    }
  }
  if (opts.quick) Object.assign(opts, { rounds: 1, duration: 1, warmup: 0.2 })
  // a profile covers one slice: one slice, the whole run
  if (opts.profile) Object.assign(opts, { rounds: 1, slices: 1, correctness: false, scale: false })
  // a round of every contestant and scenario, with fresh servers, takes up to 4 minutes on a busy 2-core machine
  opts.maxMinutes ??= 30 + 6 * Math.max(0, opts.rounds - 5)
  if (!Number.isInteger(opts.slices) || opts.slices < 1) throw new Error(`--slices takes a whole number of 1 or more, not ${opts.slices}`)
  return opts
}

// `pool`: the requests carry the id (cookie or header) of a session made beforehand, holding `pool` bytes of data,
// or with `pool` 'object' a small object (a cart) besides the counter
export const scenarios = {
  read: { label: 'read a valid session', method: 'GET', path: '/read', pool: 0 },
  'read-object': { label: 'read an object in a session', method: 'GET', path: '/read-object', pool: 'object' },
  write: { label: 'change it (counter += 1)', method: 'POST', path: '/write', pool: 0 },
  untouched: { label: 'no cookie, session untouched', method: 'GET', path: '/untouched' },
  create: { label: 'no cookie, session created', method: 'POST', path: '/write' },
  big: { label: 'read a 16 KB session', method: 'GET', path: '/read', pool: 16384 }
}

const POOL_SIZE = 200
// lets requests still in flight when autocannon stops finish before counters are read or reset
const SETTLE_MS = 150

const opts = parseArgs(process.argv.slice(2))
// built (or found in the cache) before anything runs; from here on contestants like any other
const baselines = new Map(opts.baselines.map(buildBaseline).map(b => [b.name, b]))
for (const baseline of baselines.values()) addBaseline(baseline)
for (const name of opts.only ?? []) if (!contestants[name]) throw new Error(`unknown contestant ${name}`)
const started = Date.now()
const deadline = started + opts.maxMinutes * 60_000
const resultsDir = new URL('results/', import.meta.url)
const profileDir = fileURLToPath(new URL('profiles/', resultsDir))

function checkDeadline () {
  if (Date.now() > deadline) throw new Error(`the run took longer than ${opts.maxMinutes} minutes: stopped`)
}

function log (...args) {
  const t = ((Date.now() - started) / 1000).toFixed(0).padStart(4)
  console.log(`[${t}s]`, ...args)
}

/**
 * Where processes run. Left to the scheduler, the app server and the load generator sometimes
 * share a CPU for a whole run and sometimes do not: the same server then measures about 25,000 or
 * about 39,000 requests per second on the untouched route, from one process to the next. Pinned,
 * every contestant's server has CPU 0 to itself; the load generator (this process) and Redis share
 * the others.
 */
function placement (pin) {
  const count = availableParallelism()
  if (!pin || count < 2) return null
  const others = count === 2 ? '1' : `1-${count - 1}`
  // -a: every thread of this process, so autocannon's work lands on the other CPUs too
  if (spawnSync('taskset', ['-a', '-pc', others, String(process.pid)], { stdio: 'ignore' }).status !== 0) return null
  return { server: ['taskset', '-c', '0'], others: ['taskset', '-c', others] }
}

const pinned = placement(opts.pin)

/**
 * Starts one contestant's server in a child process and waits until it listens. Each contestant
 * keeps its keys under its own prefix, so a server started again finds the sessions made before.
 */
async function startServer (contestant, redisUrl) {
  const prefix = `${contestant}:`
  const args = JSON.stringify({ contestant, redisUrl, prefix, baseline: baselines.get(contestant) })
  const child = fork(fileURLToPath(new URL('server.js', import.meta.url)), [args], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    // pinned: `taskset -c 0 node server.js …`, node inheriting the IPC channel
    ...(pinned === null ? {} : { execPath: pinned.server[0], execArgv: [...pinned.server.slice(1), process.execPath] })
  })
  const waiting = new Map()
  child.on('message', (message) => {
    const resolve = waiting.get(message.type)
    waiting.delete(message.type)
    resolve?.(message)
  })
  const ask = (type, extra = {}, timeout = 30_000) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${contestant}: no '${type}' answer within ${timeout} ms`)), timeout)
    waiting.set(type, (message) => { clearTimeout(timer); resolve(message) })
    if (type !== 'ready') child.send({ type, ...extra })
  })
  const exited = new Promise(resolve => child.once('exit', resolve))
  const { port } = await Promise.race([ask('ready'), exited.then(code => { throw new Error(`${contestant} exited with ${code}`) })])
  return {
    contestant,
    prefix,
    url: `http://127.0.0.1:${port}`,
    ask,
    close: async () => {
      if (!child.connected) return await exited
      child.send({ type: 'close' })
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(timer)
    }
  }
}

/** The request headers that send back the session id a response issued (a cookie or the id header), or undefined. */
function idHeadersFrom (res, { cookieName, idHeader }) {
  if (idHeader !== undefined) {
    const id = res.headers.get(idHeader)
    return id ? { [idHeader]: id } : undefined
  }
  for (const header of res.headers.getSetCookie()) {
    const cookie = header.split(';', 1)[0]
    if (cookie.startsWith(cookieName + '=') && cookie.length > cookieName.length + 1) return { cookie }
  }
  return undefined
}

/** How many session ids a response issued: Set-Cookie headers of the session cookie, or the id header. */
function idsIssued (res, { cookieName, idHeader }) {
  if (idHeader !== undefined) return res.headers.has(idHeader) ? 1 : 0
  return res.headers.getSetCookie().filter(h => cookieName !== null && h.startsWith(cookieName + '=')).length
}

/** Whether a contestant keeps sessions at all (the bare Fastify ceiling does not). */
function hasSessions (name) {
  return contestants[name].cookieName !== null || contestants[name].idHeader !== undefined
}

/** `count` sessions made through the contestant's own routes, 20 at a time: the headers that name each. */
async function makePool (server, count, bytes) {
  const { contestant } = server
  const pool = []
  while (pool.length < count) {
    const batch = await Promise.all(Array.from({ length: Math.min(20, count - pool.length) }, async () => {
      const res = await fetch(`${server.url}/setup?${typeof bytes === 'string' ? 'with' : 'bytes'}=${bytes}`, { method: 'POST' })
      await res.arrayBuffer()
      const headers = idHeadersFrom(res, contestants[contestant])
      if (res.status !== 200 || headers === undefined) throw new Error(`${contestant}: /setup answered ${res.status} without a session id`)
      return headers
    }))
    pool.push(...batch)
  }
  return pool
}

/** Each connection gets its own share of the sessions, so no two connections use one session at once. */
function requestsFor ({ method, path }, pool) {
  if (pool === undefined) return { requests: [{ method, path }] }
  let next = 0
  return {
    setupClient: (client) => {
      const own = pool.filter((_, i) => i % opts.connections === next % opts.connections)
      next++
      client.setRequests(own.map(headers => ({ method, path, headers })))
    }
  }
}

function load (url, requests, duration) {
  return autocannon({ url, connections: opts.connections, duration, ...requests })
}

/** The sum of a list's values, or of an object's (a map of counts). */
function sum (counts) {
  return Object.values(counts).reduce((a, b) => a + b, 0)
}

/** Sends a few requests one by one and counts the session ids (cookies or id headers) set per response. */
async function probeSetCookie (server, { method, path }, pool) {
  let ids = 0
  const n = 10
  for (let i = 0; i < n; i++) {
    const headers = pool === undefined ? {} : pool[i % pool.length]
    const res = await fetch(server.url + path, { method, headers })
    await res.arrayBuffer()
    if (res.status !== 200) throw new Error(`${server.contestant}: probe of ${path} answered ${res.status}`)
    ids += idsIssued(res, contestants[server.contestant])
  }
  return ids / n
}

/** About `seconds` of measured load on a warm server, with every counter reset before and read back after. */
async function slice (admin, server, requests, seconds, profile) {
  await admin.config('RESETSTAT')
  await server.ask('reset', { profile })
  const redisCpu = await cpuSeconds(admin)
  const keys = await admin.dbsize()
  // autocannon stops at its first sample after `duration`: samples every 100 ms let a slice end on time
  const run = await autocannon({ url: server.url, connections: opts.connections, duration: seconds, sampleInt: 100, skipAggregateResult: true, ...requests })
  await sleep(SETTLE_MS)
  const calls = await commandCalls(admin)
  return { run, calls, redisCpu: await cpuSeconds(admin) - redisCpu, stored: await admin.dbsize() - keys, app: await server.ask('stats') }
}

function addUp (maps) {
  const total = {}
  for (const map of maps) for (const [key, value] of Object.entries(map)) total[key] = (total[key] ?? 0) + value
  return total
}

/** One run's figures from its slices: counts add up, latency percentiles come from the merged histograms. */
async function figures (server, slices, scenario, pool, probe) {
  const merged = autocannon.aggregateResult(slices.map(s => s.run), { url: server.url, connections: opts.connections })
  const calls = addUp(slices.map(s => s.calls))
  const sent = addUp(slices.map(s => s.app.sent))
  const served = sum(slices.map(s => s.app.served))
  const per = Math.max(served, 1)
  // the time each slice really ran, as autocannon measured it
  const seconds = sum(slices.map(s => s.run.duration))
  return {
    rps: merged.requests.total / seconds,
    p50: merged.latency.p50,
    p99: merged.latency.p99,
    requests: merged.requests.total,
    served,
    failures: merged.non2xx + merged.errors + merged.timeouts,
    commands: sum(calls) / per,
    commandsByName: Object.fromEntries(Object.entries(calls).map(([k, v]) => [k, v / per])),
    sent: sum(sent) / per,
    stored: sum(slices.map(s => s.stored)) / per,
    appCpuMicros: sum(slices.map(s => s.app.cpuMicros)) / per,
    redisCpuMicros: sum(slices.map(s => s.redisCpu)) * 1e6 / per,
    setCookie: probe ? await probeSetCookie(server, scenario, pool) : undefined
  }
}

/** One measured run in one piece: warm up, then a single slice. */
async function measure (admin, server, scenario, pool, { probe = true } = {}) {
  const requests = requestsFor(scenario, pool)
  await load(server.url, requests, opts.warmup)
  await sleep(SETTLE_MS)
  return await figures(server, [await slice(admin, server, requests, opts.duration)], scenario, pool, probe)
}

function rotate (list, by) {
  return list.map((_, i) => list[(i + by) % list.length])
}

/**
 * The sessions each contestant's runs use, made through its own routes before any run, and the
 * bytes one of them takes in Redis (read right after it was made, when nothing else is stored).
 */
async function makePools (admin, servers, sizes) {
  const pools = {}
  const memory = []
  await admin.flushall()
  for (const server of servers.filter(s => hasSessions(s.contestant))) {
    pools[server.contestant] = {}
    for (const bytes of sizes) {
      const before = new Set(await keysUnder(admin, server.prefix))
      pools[server.contestant][bytes] = await makePool(server, POOL_SIZE, bytes)
      const made = (await keysUnder(admin, server.prefix)).filter(key => !before.has(key))
      memory.push({ contestant: server.contestant, dataBytes: bytes, bytes: await medianMemory(admin, made) })
    }
  }
  return { pools, memory }
}

/**
 * Every round measures fresh server processes, so that what one process happened to draw (how V8
 * compiled its code, where the scheduler put it) is not carried through every round. `servers` is
 * updated in place.
 */
async function mainScenarios (admin, servers, pools, redisUrl) {
  const list = Object.keys(scenarios).filter(s => opts.scenarios === null || opts.scenarios.includes(s))
  const runs = []
  // a ceiling that `sendsCookiesOf` a contestant gets its cookies (that contestant's, else the first made)
  const poolOf = (contestant, bytes) => {
    if (bytes === undefined) return undefined
    const of = contestants[contestant].sendsCookiesOf
    return (of === undefined ? pools[contestant] : pools[of] ?? Object.values(pools)[0])?.[bytes]
  }
  // a server's code is optimized before it is measured: every scenario's path, before the round
  const warmUp = async (server) => {
    for (const scenario of list) {
      const { pool: bytes } = scenarios[scenario]
      await load(server.url, requestsFor(scenarios[scenario], poolOf(server.contestant, bytes)), opts.quick ? 0.3 : 1)
    }
  }
  for (let round = 0; round < opts.rounds; round++) {
    for (let i = 0; i < servers.length; i++) {
      checkDeadline()
      if (round > 0) {
        await servers[i].close()
        servers[i] = await startServer(servers[i].contestant, redisUrl)
      }
      await warmUp(servers[i])
    }
    log(`round ${round + 1}: ${round === 0 ? 'servers' : 'fresh servers'} warmed up`)
    for (const scenario of list) {
      const { pool: bytes } = scenarios[scenario]
      const order = rotate(servers, round)
      const plan = new Map()
      for (const server of order) {
        const pool = poolOf(server.contestant, bytes)
        plan.set(server, { pool, requests: requestsFor(scenarios[scenario], pool) })
        await load(server.url, plan.get(server).requests, opts.warmup)
      }
      await sleep(SETTLE_MS)
      // every contestant's measured time in short turns, so a slow spell of the machine falls on all of them
      const slices = new Map(order.map(server => [server, []]))
      for (let turn = 0; turn < opts.slices; turn++) {
        for (const server of rotate(order, turn)) {
          checkDeadline()
          const profile = opts.profile ? join(profileDir, `${server.contestant}-${scenario}.cpuprofile`) : undefined
          slices.get(server).push(await slice(admin, server, plan.get(server).requests, opts.duration / opts.slices, profile))
        }
      }
      for (const server of order) {
        const { contestant } = server
        // what a response carries does not change between rounds: probed in the first only
        const result = await figures(server, slices.get(server), scenarios[scenario], plan.get(server).pool, round === 0)
        runs.push({ round, scenario, contestant, ...result })
        log(`round ${round + 1} ${scenario.padEnd(9)} ${contestant.padEnd(21)} ${result.rps.toFixed(0).padStart(6)} req/s  p99 ${String(result.p99).padStart(3)} ms  ` +
          `${result.commands.toFixed(2)} cmd/req  ${(result.appCpuMicros + result.redisCpuMicros).toFixed(0)} µs CPU/req` +
          `${result.failures > 0 ? `  ${result.failures} FAILED` : ''}`)
      }
    }
  }
  return runs
}

/** Final counter after `n` parallel increments on one session, spread over the given servers. */
async function lostUpdates (servers, n = 100) {
  const [headers] = await makePool(servers[0], 1, 0)
  const statuses = await Promise.all(Array.from({ length: n }, async (_, i) => {
    const res = await fetch(`${servers[i % servers.length].url}/write`, { method: 'POST', headers })
    await res.arrayBuffer()
    return res.status
  }))
  const res = await fetch(`${servers[0].url}/read`, { headers })
  const { n: final } = await res.json()
  const failed = statuses.filter(s => s !== 200).length
  return { final, failed, lost: n - failed - final }
}

async function correctness (servers, second) {
  const rows = []
  const cases = servers.filter(s => hasSessions(s.contestant)).map(s => [s])
  if (second !== undefined) cases.push([servers.find(s => s.contestant === second.contestant), second])
  for (let round = 0; round < opts.rounds; round++) {
    for (const group of cases) {
      checkDeadline()
      const result = await lostUpdates(group)
      const { contestant } = group[0]
      rows.push({ round, contestant, processes: group.length, ...result })
      log(`lost updates ${contestant}${group.length > 1 ? ` (${group.length} processes)` : ''}: final ${result.final}, lost ${result.lost}, failed ${result.failed}`)
    }
  }
  return rows
}

/** A session as each scale contestant stores it, holding `bytes` characters of data. */
function storedForm (contestant, bytes) {
  const data = { n: 0, blob: 'x'.repeat(bytes) }
  if (contestant.startsWith('hook')) return JSON.stringify(data)
  const now = Date.now()
  // the plugin's document: version, absolute deadline (the default 7 days), ttl override, created, data
  return `{"v":1,"a":${now + 604800_000},"t":0,"c":${now},"d":${JSON.stringify(data)}}`
}

async function scale (admin, servers) {
  const levels = opts.quick
    ? [[1000, 100], [20_000, 100], [1000, 4096]]
    : [[1000, 100], [100_000, 100], [1_000_000, 100], [1000, 4096], [1000, 65536]]
  const who = servers.filter(s => ['plugin-ap', 'hook-ap'].includes(s.contestant))
  const signer = new Signer(SECRET, 'sha256')
  const runs = []
  for (const [sessions, dataBytes] of levels) {
    checkDeadline()
    await admin.flushall()
    const pools = {}
    const sampleKeys = {}
    const fillStart = Date.now()
    for (const { contestant, prefix } of who) {
      const ids = await fill(admin, { prefix, count: sessions, value: storedForm(contestant, dataBytes), ttl: TTL, sample: 1000 })
      pools[contestant] = ids.map(id => ({ cookie: `sid=${encodeURIComponent(signer.sign(id))}` }))
      sampleKeys[contestant] = ids.map(id => prefix + id)
    }
    log(`scale: stored ${sessions} sessions of ${dataBytes} B for each of ${who.map(s => s.contestant).join(', ')} in ${Date.now() - fillStart} ms`)
    for (let round = 0; round < Math.min(3, opts.rounds); round++) {
      for (const server of rotate(who, round)) {
        // the count levels read only: session size is what changes a write's cost
        for (const scenario of sessions > 1000 ? ['read'] : ['read', 'write']) {
          checkDeadline()
          const { contestant } = server
          const result = await measure(admin, server, scenarios[scenario], pools[contestant], { probe: false })
          const bytes = await medianMemory(admin, sampleKeys[contestant])
          runs.push({ ...result, round, contestant, scenario, sessions, dataBytes, bytes })
          log(`scale ${sessions} × ${dataBytes} B round ${round + 1} ${scenario.padEnd(5)} ${contestant.padEnd(10)} ${result.rps.toFixed(0).padStart(6)} req/s  p99 ${result.p99} ms`)
        }
      }
    }
  }
  await admin.flushall()
  return runs
}

async function main () {
  mkdirSync(profileDir, { recursive: true })
  // the baselines asked for run whether or not --only names them
  let names = [...new Set([...(opts.only ?? Object.keys(contestants)), ...baselines.keys()])]
  if (opts.scale && !opts.main && !opts.correctness) names = names.filter(c => ['plugin-ap', 'hook-ap'].includes(c))
  // pinned, Redis shares the load generator's CPUs (as a child of this process it would inherit them anyway)
  const redis = await startRedis(pinned?.others)
  const admin = new Redis(redis.url, { maxRetriesPerRequest: 1 })
  const redisVersion = (await admin.info('server')).match(/redis_version:(\S+)/)[1]
  log(`redis-server ${redisVersion} on ${redis.url}; contestants: ${names.join(', ')}; ${pinned === null ? 'not pinned' : 'app servers on CPU 0, the load generator and Redis on the others'}`)
  const results = { opts, pinned: pinned !== null, names, redisVersion, startedAt: new Date(started).toISOString(), loadavg: { start: loadavg()[0] }, main: [], memory: [], correctness: [], scale: [] }
  const servers = []
  let main = []
  try {
    for (const name of names) servers.push(await startServer(name, redis.url))
    // a second process of the plugin, to show that no update is lost between processes either
    const second = opts.correctness && names.includes('plugin-ap') ? await startServer('plugin-ap', redis.url) : undefined
    if (second !== undefined) servers.push(second)
    main = servers.filter(s => s !== second)
    log(`${servers.length} servers started`)
    if (opts.main || opts.correctness) {
      const sizes = [...new Set(Object.values(scenarios).map(s => s.pool).filter(b => b !== undefined))]
      const { pools, memory } = await makePools(admin, main, opts.main ? sizes : [0])
      results.memory = memory
      log('session pools made')
      if (opts.main) results.main = await mainScenarios(admin, main, pools, redis.url)
      if (opts.correctness) results.correctness = await correctness(main, second)
    }
    if (opts.scale) results.scale = await scale(admin, main)
  } finally {
    for (const server of new Set([...servers, ...main])) await server.close()
    admin.disconnect()
    await redis.stop()
  }
  results.seconds = (Date.now() - started) / 1000
  results.loadavg.end = loadavg()[0]
  if (opts.profile) {
    console.log(summarize(profileDir))
    return
  }
  const out = opts.quick ? resultsDir : new URL('.', import.meta.url)
  const files = writeReport(results, out, scenarios)
  writeFileSync(new URL('results.json', resultsDir), JSON.stringify(results, null, 1))
  log(`done in ${results.seconds.toFixed(0)} s: ${files.map(f => fileURLToPath(f).replace(here, 'benchmarks/')).join(', ')}`)
}

await main()
