// One app for outage.js, in its own process: the plugin from the module named in argv[2], an
// ioredis client with the default retry and offline-queue settings, as an app would have it.
// Reports the requests in flight and its RSS every 100 ms over IPC.
import Fastify from 'fastify'
import { Redis } from 'ioredis'

const [module, redisUrl] = process.argv.slice(2)
const { default: redisSession } = await import(module)

const client = new Redis(redisUrl)
client.on('error', () => {})
const app = Fastify({ logger: false })
// before the plugin's hooks: a request waiting for its session counts
let inFlight = 0
app.addHook('onRequest', async () => { inFlight++ })
app.addHook('onResponse', async () => { inFlight-- })
await app.register(redisSession, { client, secret: 'outage-benchmark-secret-0123456789abcdef', prefix: 'outage:', cookie: { secure: false } })
app.get('/read', async (req) => ({ n: req.session.get('n') ?? 0 }))
app.post('/setup', async (req) => {
  req.session.set('n', 1)
  return { ok: true }
})

await app.listen({ host: '127.0.0.1', port: 0 })
const { port } = app.server.address()
setInterval(() => { process.send({ inFlight, rss: process.memoryUsage().rss }) }, 100).unref()
process.send({ port })
process.on('disconnect', () => { app.close().then(() => process.exit(0)) })
