// One contestant's app, in its own process: identical routes whatever the session library.
// Started by run.js with a JSON argument; talks to it over IPC.
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { contestants, addBaseline } from './contestants.js'

const { contestant, redisUrl, prefix, baseline } = JSON.parse(process.argv[2])
if (baseline !== undefined) addBaseline(baseline)

// Commands every connection sends (the app's clients and any the plugin makes of them, as the
// local cache does), counted once per command object (ioredis may pass one through sendCommand again
// when it flushes its offline queue).
const sent = new Map()
const seen = new WeakSet()
const clients = []
const send = Redis.prototype.sendCommand
Redis.prototype.sendCommand = function countedSend (command, stream) {
  if (!seen.has(command)) {
    seen.add(command)
    sent.set(command.name, (sent.get(command.name) ?? 0) + 1)
  }
  return send.call(this, command, stream)
}

function client (autoPipelining) {
  const redis = new Redis(redisUrl, { enableAutoPipelining: autoPipelining, maxRetriesPerRequest: 1 })
  clients.push(redis)
  return redis
}

const app = Fastify({ logger: false })
const access = await contestants[contestant].build(app, { client, prefix })

// requests served since the last reset: per-request figures divide by this, so requests still in
// flight when the load generator stops are counted with the commands they sent
let served = 0
app.get('/read', async (req) => { served++; return { n: access.get(req, 'n') ?? 0 } })
app.post('/write', async (req) => { served++; return { n: access.increment(req, 'n') } })
// reads an object value without changing it, as a route showing a cart does
app.get('/read-object', async (req) => {
  served++
  const cart = access.get(req, 'cart')
  return { items: cart?.items.length ?? 0, total: cart?.total ?? 0 }
})
app.get('/untouched', async () => { served++; return { ok: true } })
// not measured: makes a session holding `bytes` characters of data (or `with=object`: a cart) and a counter at 0
app.post('/setup', async (req) => {
  const bytes = Number(req.query.bytes ?? 0)
  if (bytes > 0) access.set(req, 'blob', 'x'.repeat(bytes))
  if (req.query.with === 'object') {
    access.set(req, 'cart', { items: [{ sku: 'A-1', qty: 2, price: 9.5 }, { sku: 'B-22', qty: 1, price: 24 }], total: 43, currency: 'EUR' })
  }
  access.set(req, 'n', 0)
  return { ok: true }
})

await app.listen({ host: '127.0.0.1', port: 0 })
await Promise.all(clients.map(c => c.status === 'ready' ? undefined : new Promise(resolve => c.once('ready', resolve))))

// A reset that names a profile file starts V8's CPU profiler, and the next stats request writes it:
// the profile covers the measured window only, not start-up, session set-up or warm-up.
let profiler = null
let profile

async function startProfiler (file) {
  if (profiler === null) {
    profiler = new Session()
    profiler.connect()
    await profiler.post('Profiler.enable')
    await profiler.post('Profiler.setSamplingInterval', { interval: 250 })
  }
  profile = file
  await profiler.post('Profiler.start')
}

let cpuBase = process.cpuUsage()
process.on('message', async (message) => {
  if (message.type === 'reset') {
    sent.clear()
    served = 0
    if (message.profile !== undefined) await startProfiler(message.profile)
    cpuBase = process.cpuUsage()
    process.send({ type: 'reset' })
  } else if (message.type === 'stats') {
    const cpu = process.cpuUsage(cpuBase)
    if (profile !== undefined) {
      writeFileSync(profile, JSON.stringify((await profiler.post('Profiler.stop')).profile))
      profile = undefined
    }
    // the plugin's own counters, where it is registered (the cache's hit rate)
    const sessions = app.hasDecorator('sessions') ? app.sessions.stats() : undefined
    process.send({ type: 'stats', served, sent: Object.fromEntries(sent), cpuMicros: cpu.user + cpu.system, sessions })
  } else if (message.type === 'close') {
    await app.close()
    for (const c of clients) c.disconnect()
    process.exit(0)
  }
})
process.send({ type: 'ready', port: app.server.address().port })
