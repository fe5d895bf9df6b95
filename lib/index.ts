import fp from 'fastify-plugin'
import fastifyCookie from '@fastify/cookie'
import type { FastifyBaseLogger, FastifyPluginAsync, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { Redis } from 'ioredis'
import type { RedisSessionOptions, Session } from '../types/index.js'
import { resolveOptions } from './options.js'
import { SessionStore } from './store.js'
import { SessionWriter } from './writer.js'
import { SessionCookie } from './cookie.js'
import { SessionSchema } from './schema.js'
import { newStats } from './stats.js'
import { RedisSession, kCommit, type SessionContext } from './session.js'
import { errors } from './errors.js'
import { UserIndex } from './user-index.js'
import { SessionManager } from './sessions.js'

const logBindings = { plugin: 'fastify-session-redis' }
const kSession: unique symbol = Symbol('fastify-session-redis.session')
const kLazy: unique symbol = Symbol('fastify-session-redis.lazy')

declare module 'fastify' {
  interface FastifyRequest {
    [kSession]: RedisSession | typeof kLazy | null
  }
}

/** `config: { session: false }`. Asked only when needed: `routeOptions` builds a new object on every call. */
function optedOut (request: FastifyRequest): boolean {
  return request.routeOptions.config.session === false
}

const plugin: FastifyPluginAsync<RedisSessionOptions> = async (fastify, opts) => {
  const config = resolveOptions(opts)
  // an app that registered @fastify/cookie itself keeps its own secret: ours signs only our cookie
  if (!fastify.hasReplyDecorator('setCookie')) await fastify.register(fastifyCookie)

  const stats = newStats()
  const store = new SessionStore(config.client, config.prefix, config.timeout, stats)
  const schema = config.schema === undefined ? undefined : new SessionSchema(config.schema)
  const ctx: SessionContext = {
    config,
    store,
    writer: new SessionWriter(store, config.ttl, config.maxBytes, stats, schema),
    cookie: new SessionCookie(config.cookieName, config.secrets, config.cookie, (header) => fastify.parseCookie(header)),
    stats,
    schema,
    index: config.userKey === undefined && !config.trackClient ? undefined : new UserIndex(store, config)
  }
  fastify.decorate('sessions', new SessionManager(store, config.userKey === undefined ? undefined : ctx.index, stats, config.ttl))

  // The session lives under a symbol; `request.session` reads it, so that a request that never
  // touches its session never builds one. kLazy: the hook ran and found no session to load.
  fastify.decorateRequest(kSession, null)
  fastify.decorateRequest('session', {
    // typed as the routes see it; `null` on a route with `config: { session: false }`
    getter: function session (this: FastifyRequest): Session {
      const current = this[kSession]
      if (current !== kLazy) return current as Session
      const fresh = optedOut(this) ? null : RedisSession.fresh(ctx, this)
      this[kSession] = fresh
      return fresh as Session
    }
  })

  // Callback-style hooks: a request without a session cookie, or one that changed nothing, goes
  // through without a single promise.
  fastify.addHook('onRequest', function loadSession (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) {
    const raw = ctx.cookie.raw(request)
    if (raw === undefined) {
      request[kSession] = kLazy
      return done()
    }
    if (optedOut(request)) return done()
    const verified = ctx.cookie.verify(raw)
    if (verified === null) {
      stats.rejectedCookies++
      request.log.debug(logBindings, 'fastify-session-redis: rejected a session cookie')
      request[kSession] = kLazy
      return done()
    }
    RedisSession.load(ctx, request, verified).then((session) => {
      request[kSession] = session
      done()
    }, done)
  })

  fastify.addHook('onSend', function saveSession (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err: Error | null, payload?: unknown) => void) {
    let session = request[kSession]
    // never read: built now only when even an untouched new session is to be stored
    if (session === kLazy) session = config.saveUninitialized ? request.session as RedisSession | null : null
    if (session === null) return done(null, payload)
    session[kCommit](reply, (err) => {
      if (err === null) return done(null, payload)
      // a redirect must not lead on as if the change had landed
      reply.removeHeader('location')
      done(err)
    })
  })

  if (config.ownsClient) {
    watchConnection(config.client as Redis, store, fastify.log)
    fastify.addHook('onClose', async function closeRedis () {
      const client = config.client
      if (client.status === 'ready') await client.quit()
      else client.disconnect()
    })
  }
}

/**
 * Nobody else can listen on a connection the plugin made: without a listener ioredis prints every
 * reconnect failure to stderr. A failure is logged once at warn, naming the address and the cause,
 * until the connection is ready again; 503 errors meanwhile carry the cause too.
 */
function watchConnection (client: Redis, store: SessionStore, log: FastifyBaseLogger): void {
  const { path, host, port } = client.options
  const address = path ?? `${host ?? 'localhost'}:${port ?? 6379}`
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
export default redisSession
