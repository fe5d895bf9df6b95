import fp from 'fastify-plugin'
import fastifyCookie from '@fastify/cookie'
import type { FastifyBaseLogger, FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify'
import type { Redis } from 'ioredis'
import type { RedisSessionOptions } from '../types/index.js'
import { resolveOptions } from './options.js'
import { SessionStore } from './redis/store.js'
import { Outage, addressOf } from './redis/outage.js'
import { SessionWriter } from './redis/writer.js'
import { SessionCookie } from './cookie/signed-cookie.js'
import { storedIdOf } from './model/ids.js'
import { SessionSchema } from './model/schema.js'
import { newStats } from './model/stats.js'
import { SessionRepository } from './session/repository.js'
import type { SessionContext } from './session/request-session.js'
import { sessionHooks } from './hooks.js'
import { errors, logBindings } from './model/errors.js'
import { UserIndex } from './redis/user-index.js'
import { SessionManager } from './manager.js'
import { LocalCache } from './model/local-cache.js'
import type { SessionDocument } from './model/document.js'
import { Invalidations, cacheLog } from './redis/invalidations.js'

/** `config: { session: false }`. Asked only when needed: `routeOptions` builds a new object on every call. */
function optedOut (request: FastifyRequest): boolean {
  return request.routeOptions.config.session === false
}

const plugin: FastifyPluginAsync<RedisSessionOptions> = async (fastify, opts) => {
  const config = resolveOptions(opts)
  const codec = await cookieCodec(fastify)

  const stats = newStats()
  const cache = config.cache === undefined ? undefined : new LocalCache<SessionDocument>({ max: config.cache.max, lease: config.cache.lease, stats, onChange: cacheLog(fastify.log) })
  // a Cluster client was refused with the options
  const invalidations = cache === undefined ? undefined : new Invalidations({ client: config.client as Redis, prefix: config.prefix, cache, lease: config.cache!.lease, log: fastify.log, timeout: config.timeout })
  // with the cache, the session commands go through a connection of the plugin's own (lib/redis/invalidations.ts says why)
  const client = invalidations?.data ?? config.client
  const outage = new Outage(client, config.timeout, fastify.log)
  const store = new SessionStore({ client, prefix: config.prefix, timeout: config.timeout, stats, outage, cache })
  const schema = config.schema === undefined ? undefined : new SessionSchema(config.schema)
  const storedId = storedIdOf(config.hashIds)
  const index = config.userKey === undefined && !config.trackClient ? undefined : new UserIndex(store, config)
  const writer = new SessionWriter({ store, ttl: config.ttl, timeout: config.timeout, maxBytes: config.maxBytes, stats, schema })
  const ctx: SessionContext = {
    config,
    repository: new SessionRepository({ config, store, writer, stats, storedIdOf: storedId, schema, index, cache }),
    cookie: new SessionCookie({
      name: config.cookieName,
      secrets: config.secrets,
      settings: config.cookie,
      parse: codec.parseCookie,
      serialize: codec.serializeCookie,
      storedIdOf: storedId,
      transport: config
    }),
    stats,
    schema
  }
  fastify.decorate('sessions', new SessionManager({ context: ctx, store, index, storedIdOf: storedId, log: fastify.log }))

  const hooks = sessionHooks(ctx, optedOut)
  fastify.decorateRequest(hooks.kSession, null)
  fastify.decorateRequest(hooks.kSending, undefined)
  // typed as the routes see it; `null` on a route with `config: { session: false }`
  fastify.decorateRequest('session', { getter: hooks.session })
  fastify.addHook('onRequest', hooks.loadSession)
  fastify.addHook('onSend', hooks.saveSession)

  if (invalidations !== undefined) {
    watchConnection(invalidations.data, store, fastify.log)
    invalidations.start()
    fastify.addHook('onClose', async function closeSessionCache () {
      await invalidations.close()
    })
  }

  if (config.ownsClient) {
    watchConnection(config.client as Redis, store, fastify.log)
    fastify.addHook('onClose', async function closeRedis () {
      const client = config.client
      if (client.status === 'ready') await client.quit()
      else client.disconnect()
    })
  }
}

type CookieCodec = Pick<FastifyInstance, 'parseCookie' | 'serializeCookie'>

/**
 * @fastify/cookie's parser and serializer. Unless the app registered @fastify/cookie first, from a
 * registration in a context of the plugin's own: nothing is decorated on the app, so it may register
 * @fastify/cookie (with its own secret and options) before this plugin, after it, or not at all.
 */
async function cookieCodec (fastify: FastifyInstance): Promise<CookieCodec> {
  // registered already: its parser, with the app's options (a second registration would clash)
  let codec: CookieCodec = fastify
  if (!fastify.hasDecorator('parseCookie')) {
    await fastify.register(async function sessionCookieCodec (scope) {
      await scope.register(fastifyCookie)
      codec = scope
    })
  }
  return { parseCookie: (header) => codec.parseCookie(header), serializeCookie: (name, value, options) => codec.serializeCookie(name, value, options) }
}

/**
 * Nobody else can listen on a connection the plugin made: without a listener ioredis prints every
 * reconnect failure to stderr. A failure is logged once at warn, naming the address and the cause,
 * until the connection is ready again; 503 errors meanwhile carry the cause too.
 */
function watchConnection (client: Redis, store: SessionStore, log: FastifyBaseLogger): void {
  const address = addressOf(client)
  client.on('error', function redisError (err: Error) {
    const cause = `Redis at ${address}: ${err.message}`
    if (store.connectionError !== cause) log.warn({ ...logBindings, err }, `fastify-session-redis: cannot reach ${cause}`)
    store.connectionError = cause
  })
  client.on('ready', function redisReady () {
    if (store.connectionError !== undefined) log.info(logBindings, `fastify-session-redis: Redis at ${address} is reachable again`)
    store.connectionError = undefined
  })
}

export const redisSession = fp(plugin, { fastify: '5.x', name: 'fastify-session-redis' })
export { errors }
export { channelNames as channels } from './model/channels.js'
export { Type } from '@sinclair/typebox'
export default redisSession
