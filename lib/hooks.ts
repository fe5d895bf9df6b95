import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { Session } from '../types/index.js'
import { RedisSession, kFinish, kSetCookie, type SessionContext } from './session/request-session.js'
import { verifyCookie, type CookieId } from './cookie/signed-cookie.js'
import { errors, logBindings } from './model/errors.js'

const kSession: unique symbol = Symbol('fastify-session-redis.session')
const kLazy: unique symbol = Symbol('fastify-session-redis.lazy')
const kSending: unique symbol = Symbol('fastify-session-redis.sending')

declare module 'fastify' {
  interface FastifyRequest {
    /** The session; kLazy: the hook ran and found none to load, so one is built on first use. */
    [kSession]: RedisSession | typeof kLazy | null
    /** While the end-of-request save is in flight: the passes of onSend that came after the first. */
    [kSending]: Array<() => void> | null | undefined
  }
}

type SendDone = (err: Error | null, payload?: unknown) => void

/**
 * The request side of the plugin: loads a session in onRequest, builds a fresh one on first use,
 * and in onSend saves it and sets the cookie. The hooks take callbacks, not promises: a request
 * without a session cookie, or one that changed nothing, goes through without a single promise.
 * `optedOut` says whether a route has `config: { session: false }`.
 */
export function sessionHooks (ctx: SessionContext, optedOut: (request: FastifyRequest) => boolean) {
  const { cookie, config, stats } = ctx

  /** The request's session, built now if it is its first use; null on a route that opted out. */
  function sessionOf (request: FastifyRequest): RedisSession | null {
    const current = request[kSession]
    if (current !== kLazy) return current
    const fresh = optedOut(request) ? null : RedisSession.fresh(ctx, request)
    request[kSession] = fresh
    return fresh
  }

  /**
   * `request.session`: a request that never touches its session never builds one. Where there is
   * none (a route with `config: { session: false }`, or a hook that runs before the plugin's), an
   * error that says so: the type promises a session, and a null would fail later, less clearly.
   */
  function session (this: FastifyRequest): Session {
    const found = sessionOf(this)
    if (found === null) throw new errors.FST_REDIS_SESSION_NONE(optedOut(this) ? 'the route has config: { session: false }' : 'it is read before the plugin\'s onRequest hook ran')
    return found
  }

  function loadSession (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
    const remembered = cookie.remembered(request.headers)
    if (remembered !== undefined) return optedOut(request) ? done() : openSession(request, remembered, done)
    const raw = cookie.raw(request.headers, request.cookies)
    if (raw === undefined) {
      request[kSession] = kLazy
      return done()
    }
    if (optedOut(request)) return done()
    const verified = verifyCookie(cookie, stats, request.log, raw)
    if (verified === null) {
      request[kSession] = kLazy
      return done()
    }
    cookie.remember(request.headers, verified)
    openSession(request, verified, done)
  }

  function openSession (request: FastifyRequest, verified: CookieId, done: HookHandlerDoneFunction): void {
    const opened = RedisSession.open(ctx, request, verified)
    // from the local cache: on at once, no promise
    if (!(opened instanceof Promise)) {
      request[kSession] = opened
      return done()
    }
    opened.then((loaded) => {
      request[kSession] = loaded
      done()
    }, done)
  }

  /**
   * A route that sends twice (an async handler that calls `reply.redirect()` without returning the
   * reply) runs onSend again while the first pass's save is in flight: the later pass is dropped,
   * so the first response goes out, with the cookie. A redirect whose save failed loses its
   * Location: it must not lead on as if the change had landed.
   */
  function saveSession (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: SendDone): void {
    let current = request[kSession]
    // never read: built now only when even an untouched new session is to be stored
    if (current === kLazy) current = config.saveUninitialized ? sessionOf(request) : null
    const sending = request[kSending]
    if (current === null || sending === null) return done(null, payload)
    if (sending !== undefined) {
      sending.push(() => { request.log.debug(logBindings, 'fastify-session-redis: the route sent a second response, dropped; did it forget to return reply?') })
      return
    }
    const session = current
    let pending: Promise<unknown> | null
    try {
      pending = session[kFinish]()
      if (pending === null) session[kSetCookie](reply)
    } catch (err) {
      return finishSend(request, reply, payload, done, err as Error)
    }
    if (pending === null) return finishSend(request, reply, payload, done, null)
    request[kSending] = []
    pending.then(() => { session[kSetCookie](reply) })
      .then(() => null, (err: Error) => err)
      .then((err) => { finishSend(request, reply, payload, done, err) })
      // Fastify's continuation threw: reported, never left as an unhandled rejection
      .catch((err: Error) => { process.emitWarning(err) })
  }

  /** Lets the response go on (without its Location when the save failed), then drops the later passes. */
  function finishSend (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: SendDone, err: Error | null): void {
    // undefined when there was no save to wait for
    const later = request[kSending]
    request[kSending] = null
    if (err === null) done(null, payload)
    else {
      reply.removeHeader('location')
      done(err)
    }
    later?.forEach((drop) => { drop() })
  }

  return { kSession, kSending, session, loadSession, saveSession }
}
