// `npm run demo`: the demo on http://localhost:3000 (PORT overrides), on the Redis that findRedis picks.
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import { buildDemo } from './app.js'
import { findRedis } from './redis.js'

const SHUTDOWN_TIMEOUT_MS = 5000
const port = Number(process.env.PORT ?? 3000)
// random unless given: restarting the demo then logs everyone out, which is the safe default
const secret = process.env.SESSION_SECRET ?? randomBytes(32).toString('base64url')

const redis = await findRedis()
if (redis === null) {
  console.error('The demo needs Redis: install redis-server (apt-get install redis-server, or brew install redis) or set REDIS_URL.')
  process.exit(1)
}

const client = new Redis(redis.url, { maxRetriesPerRequest: 1 })
client.on('error', (err) => console.error(`Redis: ${err.message}`))
let app
let stopping = false

/** Closes the app, then its Redis client, then the private redis-server if the demo started one. */
async function stopAll (code) {
  if (stopping) return
  stopping = true
  setTimeout(() => {
    console.error('The demo did not shut down in time; exiting anyway.')
    process.exit(1)
  }, SHUTDOWN_TIMEOUT_MS).unref()
  await app?.close()
  if (client.status === 'ready') await client.quit()
  else client.disconnect()
  await redis.stop()
  process.exit(code)
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    console.log(`${signal}: shutting down`)
    stopAll(0).catch((err) => {
      console.error(err)
      process.exit(1)
    })
  })
}

try {
  app = await buildDemo({ client, secret, logger: { level: process.env.LOG_LEVEL ?? 'warn' } })
  await app.listen({ port, host: process.env.HOST ?? 'localhost' })
  console.log(`fastify-session-redis demo listening on http://localhost:${port} (Redis: ${redis.description})`)
} catch (err) {
  console.error(`The demo could not start: ${err.message}`)
  await stopAll(1)
}
