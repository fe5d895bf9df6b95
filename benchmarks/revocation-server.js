// Instance B of the revocation measurement (cache.js), in its own process: the plugin with `cache`,
// on the Redis and prefix instance A uses. Tells its port over IPC.
import Fastify from 'fastify'
import { Redis } from 'ioredis'

const { plugin, redisUrl, prefix, secret, lease } = JSON.parse(process.argv[2])
const { default: redisSession } = await import(plugin)
const client = new Redis(redisUrl)
const app = Fastify()
await app.register(redisSession, { client, secret, prefix, userKey: 'user', cache: { lease } })
// what the session holds, and how many reads the cache has answered so far
app.get('/me', async (req) => ({ user: req.session.get('user') ?? null, n: req.session.get('n') ?? null, hits: app.sessions.stats().cacheHits }))
await app.listen({ host: '127.0.0.1', port: 0 })
process.on('message', async () => {
  await app.close()
  client.disconnect()
  process.exit(0)
})
process.send({ port: app.server.address().port })
