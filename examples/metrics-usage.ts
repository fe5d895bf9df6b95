// How an app mounts metrics.ts, as docs/events-and-metrics.md shows it. Type-checked by
// `npx tsc -p examples`; test/metrics-example.test.ts runs metrics.ts itself.
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import redisSession from 'fastify-session-redis'
import { sessionMetrics } from './metrics.js'

const app = Fastify()
const client = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
const secret = process.env.SESSION_SECRET

await app.register(redisSession, { client, secret })
sessionMetrics(app) // its own prom-client Registry; pass one as the second argument to share it
