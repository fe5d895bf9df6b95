import { createHash, randomBytes } from 'node:crypto'
import Fastify, { type FastifyInstance, type FastifyServerOptions, type LightMyRequestResponse } from 'fastify'
import { Redis, type Cluster } from 'ioredis'
import type { Test } from 'tap'
import redisSession from '../../lib/index.js'
import type { RedisSessionOptions } from '../../types/index.js'
import { startRedis } from './redis-server.js'
import { dataRoutes } from './routes.js'

export const SECRET = 'test-secret-0123456789-abcdefghijklmnop'
export const OLD_SECRET = 'old-secret-0123456789-abcdefghijklmnopq'

let shared: Promise<string> | undefined

/** A Redis for tests that leave it running: REDIS_URL, else one private server per test file. */
export function sharedRedisUrl (): Promise<string> {
  if (process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '') return Promise.resolve(process.env.REDIS_URL)
  shared ??= startRedis().then(server => server.url)
  return shared
}

/** An ioredis client that the test's teardown closes. */
export async function connect (t: Test, url?: string): Promise<Redis> {
  const client = new Redis(url ?? await sharedRedisUrl(), { maxRetriesPerRequest: 1 })
  t.teardown(() => { client.disconnect() })
  return client
}

/** A key prefix no other test uses, so parallel files never collide and nothing needs FLUSHALL. */
export function uniquePrefix (): string {
  return `test:${randomBytes(6).toString('hex')}:`
}

/**
 * A session id as Redis holds it by default (`hashIds`), in keys and user indexes: its SHA-256 in
 * base64url. Worked out here on its own, not with the plugin's code.
 */
export function hashedId (id: string): string {
  return createHash('sha256').update(id).digest('base64url')
}

/** The Redis key of the session with this id, as the plugin names it by default (`hashIds`). */
export function sessionKey (prefix: string, id: string): string {
  return prefix + hashedId(id)
}

/** Any ioredis client the plugin takes: a Redis (the default here) or a Cluster. */
type Client = Redis | Cluster

export interface TestApp<C extends Client = Redis> {
  app: FastifyInstance
  client: C
  /** The key prefix: `session.prefix` when given, else one no other test uses. */
  prefix: string
}

export interface BuildOptions<C extends Client = Redis> {
  session?: Partial<RedisSessionOptions>
  fastify?: FastifyServerOptions
  /** Default: a new connection to the shared Redis, closed at teardown. */
  client?: C
  routes?: (app: FastifyInstance) => void
  /** Runs before the plugin is registered (e.g. to register @fastify/cookie first). */
  before?: (app: FastifyInstance) => Promise<void>
}

/**
 * An app with the plugin and the shared data routes (GET /read, POST /write, POST /increment, GET
 * /untouched: see routes.ts) besides `routes`; closed at teardown.
 */
export async function buildApp<C extends Client = Redis> (t: Test, options: BuildOptions<C> = {}): Promise<TestApp<C>> {
  const client = options.client ?? await connect(t) as C
  const prefix = options.session?.prefix ?? uniquePrefix()
  const app = Fastify(options.fastify)
  t.teardown(() => app.close())
  await options.before?.(app)
  await app.register(redisSession, { client, secret: SECRET, ...options.session, prefix })
  dataRoutes(app)
  options.routes?.(app)
  await app.ready()
  return { app, client, prefix }
}

/** The `name=value` pair of the session cookie a response set, for the next request's Cookie header. */
export function sessionCookie (res: LightMyRequestResponse, name = 'sid'): string {
  const cookie = res.cookies.find(c => c.name === name)
  if (cookie === undefined) throw new Error(`response set no ${name} cookie`)
  return `${name}=${cookie.value}`
}

/** The Set-Cookie headers of a response, as a list. */
export function setCookies (res: LightMyRequestResponse): string[] {
  const header = res.headers['set-cookie']
  if (header === undefined) return []
  return Array.isArray(header) ? header : [header]
}

/** Every key under a prefix (SCAN, never KEYS). */
export async function keysUnder (client: Redis, prefix: string): Promise<string[]> {
  const keys: string[] = []
  let cursor = '0'
  do {
    const [next, batch] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
    keys.push(...batch)
    cursor = next
  } while (cursor !== '0')
  return keys
}
