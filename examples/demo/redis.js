// Finds a Redis for the demo: REDIS_URL, else a local one on 6379, else a private redis-server.
import { answersPing, startRedisServer } from '../../tools/redis-server.js'

const LOCAL_PORT = 6379

/** Starts `redis-server` from PATH on a free loopback port, without persistence; null when it cannot. */
async function startPrivate () {
  let server
  try {
    // its own process group: Ctrl-C reaches the demo, which stops it in order
    server = await startRedisServer({ detached: true })
  } catch {
    return null // no redis-server on PATH, or it would not start
  }
  return {
    url: server.url,
    description: `a private redis-server on port ${server.port} (pid ${server.pid()}), stopped when the demo exits`,
    stop: () => server.stop()
  }
}

/**
 * The Redis the demo uses, or null when none can be found or started. DEMO_REDIS=private skips
 * REDIS_URL and the local Redis, and always starts a private one.
 */
export async function findRedis (env = process.env) {
  const privateOnly = env.DEMO_REDIS === 'private'
  if (!privateOnly && env.REDIS_URL) return { url: env.REDIS_URL, description: 'REDIS_URL', stop: async () => {} }
  if (!privateOnly && await answersPing(LOCAL_PORT)) {
    return { url: `redis://127.0.0.1:${LOCAL_PORT}`, description: `the local Redis on port ${LOCAL_PORT}`, stop: async () => {} }
  }
  return startPrivate()
}
