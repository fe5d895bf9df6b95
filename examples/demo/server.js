// `npm run demo`: the demo on http://localhost:3000 (PORT overrides), on the Redis that findRedis picks.
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import { buildDemo } from './app.js'
import { findRedis } from './redis.js'

const SHUTDOWN_TIMEOUT_MS = 5000
const PARENT_CHECK_MS = 500
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

function shutDown (reason) {
  if (stopping) return
  console.log(`${reason}: shutting down`)
  stopAll(0).catch((err) => {
    console.error(err)
    process.exit(1)
  })
}

// Ctrl-C (SIGINT), kill or a service manager (SIGTERM), the terminal closing (SIGHUP): by default
// Node dies of them without running any cleanup, and the redis-server would outlive it. Listened to
// for good, not once: a second Ctrl-C while shutting down must not kill the demo half-way.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => shutDown(signal))

// `npm run demo` runs the demo under a shell, and a SIGTERM to npm ends that shell, not the demo:
// orphaned, the demo stops rather than hold on to its port and its redis-server
const parent = process.ppid
setInterval(() => {
  if (process.ppid !== parent) shutDown('parent process gone')
}, PARENT_CHECK_MS).unref()

try {
  app = await buildDemo({ client, secret, logger: { level: process.env.LOG_LEVEL ?? 'warn' } })
  await app.listen({ port, host: process.env.HOST ?? 'localhost' })
  // the port it got: PORT=0 asks for any free one
  console.log(`fastify-session-redis demo listening on http://localhost:${app.server.address().port} (Redis: ${redis.description})`)
} catch (err) {
  console.error(`The demo could not start: ${err.message}`)
  await stopAll(1)
}
