// What an outage costs the app: 30 connections read their sessions while Redis is killed for 20 s
// and then started again (empty). Measured per build of the plugin: the requests in flight and the
// RSS during the outage, the answers by status, and how long after Redis is back the first 200 comes.
//   node benchmarks/outage.js [--baseline REF] [--seconds 20] [--connections 30] [--pipelining 1]
// A connection waits for its answers (at most `pipelining` at once): the load is closed-loop, so what
// a slow answer costs shows as fewer answers and a longer wait, the requests in flight as their peak.
// Loopback only; every phase is bounded in time.
import { fork } from 'node:child_process'
import { parseArgs } from 'node:util'
import { fileURLToPath, pathToFileURL } from 'node:url'
import autocannon from 'autocannon'
import { startRedisServer } from '../tools/redis-server.js'
import { buildBaseline } from './baselines.js'

const { values: opts } = parseArgs({
  options: {
    baseline: { type: 'string' },
    seconds: { type: 'string', default: '20' },
    connections: { type: 'string', default: '30' },
    pipelining: { type: 'string', default: '1' }
  }
})
const OUTAGE_MS = Number(opts.seconds) * 1000
const CONNECTIONS = Number(opts.connections)
const BEFORE_MS = 3000
const AFTER_MS = 5000
const SESSIONS = 100

const builds = [{ name: 'this tree', module: pathToFileURL(fileURLToPath(new URL('../dist/index.js', import.meta.url))).href }]
if (opts.baseline !== undefined) {
  const baseline = buildBaseline(opts.baseline)
  builds.unshift({ name: `at ${baseline.short}`, module: baseline.module })
}

function sleep (ms) {
  return new Promise(resolve => setTimeout(resolve, ms))
}

async function measure ({ name, module }) {
  const redis = await startRedisServer()
  const child = fork(fileURLToPath(new URL('outage-server.js', import.meta.url)), [module, redis.url], { stdio: 'inherit' })
  const port = await new Promise(resolve => child.on('message', function first (m) {
    if (m.port !== undefined) { child.off('message', first); resolve(m.port) }
  }))
  const url = `http://127.0.0.1:${port}`
  const cookies = []
  for (let i = 0; i < SESSIONS; i++) {
    const res = await fetch(url + '/setup', { method: 'POST' })
    cookies.push(res.headers.get('set-cookie').split(';')[0])
  }
  let phase = 'before'
  const blank = () => ({ inFlight: 0, rss: 0, samples: 0, inFlightSum: 0, answers: 0, waitSum: 0 })
  const peak = { before: blank(), outage: blank(), after: blank() }
  child.on('message', ({ inFlight, rss }) => {
    if (inFlight === undefined) return
    const p = peak[phase]
    p.inFlight = Math.max(p.inFlight, inFlight)
    p.rss = Math.max(p.rss, rss)
    p.samples++
    p.inFlightSum += inFlight
  })
  const statuses = { before: {}, outage: {}, after: {} }
  let back = 0
  let firstOk = -1
  let next = 0
  const load = autocannon({
    url: url + '/read',
    connections: CONNECTIONS,
    pipelining: Number(opts.pipelining),
    duration: (BEFORE_MS + OUTAGE_MS + AFTER_MS) / 1000,
    requests: [{ setupRequest: (req) => ({ ...req, headers: { ...req.headers, cookie: cookies[next++ % SESSIONS] } }) }]
  })
  load.on('response', (_client, status, _bytes, ms) => {
    statuses[phase][status] = (statuses[phase][status] ?? 0) + 1
    peak[phase].answers++
    peak[phase].waitSum += ms
    if (phase === 'after' && status === 200 && firstOk < 0) firstOk = performance.now() - back
  })
  await sleep(BEFORE_MS)
  await redis.kill()
  phase = 'outage'
  await sleep(OUTAGE_MS)
  await redis.restart()
  back = performance.now()
  phase = 'after'
  await load
  child.disconnect()
  await redis.kill()
  const mb = (bytes) => Math.round(bytes / 1024 / 1024)
  console.log(`\n${name}`)
  for (const p of ['before', 'outage', 'after']) {
    const { inFlight, inFlightSum, samples, rss, answers, waitSum } = peak[p]
    console.log(`  ${p.padEnd(7)} in flight: at most ${inFlight}, on average ${(inFlightSum / samples).toFixed(1)}; RSS at most ${mb(rss)} MB; mean wait ${(waitSum / answers).toFixed(1)} ms; answers ${JSON.stringify(statuses[p])}`)
  }
  console.log(`  first 200 after Redis was back: ${firstOk < 0 ? 'none' : Math.round(firstOk) + ' ms'}`)
}

for (const build of builds) await measure(build)
