import fp from 'fastify-plugin'
import fastifyCookie from '@fastify/cookie'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
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
import { Sessions } from './manager.js'

const logBindings = { plugin: 'fastify-redis-session' }

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
  fastify.decorate('sessions', new Sessions(store, config.userKey === undefined ? undefined : ctx.index, stats, config.ttl))

  fastify.decorateRequest<Session | null>('session', null)

  fastify.addHook('onRequest', async function loadSession (request: FastifyRequest) {
    if (request.routeOptions.config.session === false) return
    const raw = ctx.cookie.raw(request)
    const verified = raw === undefined ? null : ctx.cookie.verify(raw)
    if (raw !== undefined && verified === null) {
      stats.rejectedCookies++
      request.log.debug(logBindings, 'fastify-redis-session: rejected a session cookie')
    }
    request.session = verified === null
      ? RedisSession.fresh(ctx, request)
      : await RedisSession.load(ctx, request, verified)
  })

  fastify.addHook('onSend', async function saveSession (request: FastifyRequest, reply: FastifyReply, payload: unknown) {
    const session = request.session as RedisSession | null
    if (session === null) return payload
    try {
      await session[kCommit](reply)
    } catch (err) {
      // the error response replaces this one: a redirect must not lead on as if the change had landed
      reply.removeHeader('location')
      throw err
    }
    return payload
  })

  if (config.ownsClient) {
    // nobody else can listen on this connection; without a listener ioredis prints every reconnect
    // failure to stderr. The requests that need Redis meanwhile get a 503.
    config.client.on('error', function redisError (err: Error) {
      fastify.log.debug({ ...logBindings, err }, 'fastify-redis-session: Redis connection error')
    })
    fastify.addHook('onClose', async function closeRedis () {
      const client = config.client
      if (client.status === 'ready') await client.quit()
      else client.disconnect()
    })
  }
}

export const redisSession = fp(plugin, { fastify: '5.x', name: 'fastify-redis-session' })
export { errors }
export default redisSession
