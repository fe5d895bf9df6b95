// The demo app: a few pages that show what the session plugin does, built around one ioredis client.
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import Fastify from 'fastify'
import fastifyCookie from '@fastify/cookie'
import redisSession from 'fastify-session-redis'
import { errorPage, homePage, loginPage, membersPage, TTL_CHOICES, ttlLabel } from './views.js'

export const COOKIE_NAME = 'sid'
export const DEFAULT_TTL = 1800
const MAX_USERNAME = 40
const PING_TIMEOUT_MS = 1000

const stylesheet = await readFile(new URL('./public/style.css', import.meta.url), 'utf8')

/** Routes that never touch a session: no Redis call, no cookie, no extension of the idle timeout. */
const noSession = { config: { session: false } }

/**
 * The request carried a session cookie but got a new, empty session: Redis no longer holds the
 * session it named (idle timeout, absolute deadline, or logged out elsewhere). Says so once.
 */
function flashIfExpired (request) {
  const { session } = request
  if (!session.isNew || request.cookies[COOKIE_NAME] === undefined) return false
  session.flash('warning', 'Your session has expired: Redis dropped it after its idle timeout (or it was logged out elsewhere). Please log in again.')
  return true
}

/** preHandler for pages that need a logged-in session: everyone else goes to the login page. */
export async function requireSession (request, reply) {
  if (request.session.has('user')) return
  const { loginMessage } = request.routeOptions.config
  if (!flashIfExpired(request) && loginMessage !== undefined) request.session.flash('info', loginMessage)
  return reply.redirect('/login', 303)
}

function html (reply, page) {
  return reply.type('text/html; charset=utf-8').send(page)
}

function withTimeout (promise, ms) {
  let timer
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

function refusesUserKey (err) {
  return err?.code === 'FST_REDIS_SESSION_INVALID_OPTION' && err.message.includes('userKey')
}

/**
 * Builds the demo on `client`, which stays the caller's to close. Sessions are indexed by user
 * (`userKey`) when the plugin supports it; a plugin without the per-user index refuses the option,
 * and the demo then runs without "Log out everywhere".
 */
export async function buildDemo (options) {
  try {
    return await createApp({ ...options, userKey: 'user' })
  } catch (err) {
    if (!refusesUserKey(err)) throw err
  }
  return createApp(options)
}

async function createApp ({ client, secret, prefix = 'demo:sess:', userKey, logger = false }) {
  const app = Fastify({ logger })

  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, async (request, body) => {
    return Object.fromEntries(new URLSearchParams(body))
  })

  // the pages read request.cookies: the app's own @fastify/cookie (the plugin decorates none)
  await app.register(fastifyCookie)
  await app.register(redisSession, {
    client,
    secret,
    prefix,
    cookieName: COOKIE_NAME,
    ttl: DEFAULT_TTL,
    ...(userKey === undefined ? {} : { userKey })
  })
  const perUser = userKey !== undefined && typeof app.sessions?.destroyAll === 'function' && typeof app.sessions.list === 'function'

  // Every response built from a session is for this browser, at this moment only: kept in its
  // cache, Back after logging out would show the logged-in page again.
  app.addHook('onSend', async function noStore (request, reply) {
    if (request.routeOptions.config.session !== false) reply.header('cache-control', 'no-store')
  })

  app.setErrorHandler(async function renderError (err, request, reply) {
    const statusCode = err.statusCode >= 400 ? err.statusCode : 500
    if (statusCode >= 500) request.log.error(err)
    const message = err.code === 'FST_REDIS_SESSION_STORE_UNAVAILABLE'
      ? 'Redis is not answering right now. Try again in a moment.'
      : statusCode < 500 ? err.message : 'Something went wrong.'
    return html(reply.code(statusCode), errorPage({ statusCode, message }))
  })

  app.setNotFoundHandler(async function notFound (request, reply) {
    return html(reply.code(404), errorPage({ statusCode: 404, message: 'No such page.' }))
  })

  app.get('/style.css', noSession, async (request, reply) => {
    return reply.type('text/css; charset=utf-8').header('cache-control', 'public, max-age=300').send(stylesheet)
  })

  app.get('/favicon.ico', noSession, async (request, reply) => reply.code(204).send())

  app.get('/health', noSession, async (request, reply) => {
    try {
      await withTimeout(client.ping(), PING_TIMEOUT_MS)
      return { status: 'ok' }
    } catch {
      return reply.code(503).send({ status: 'unavailable' })
    }
  })

  app.get('/', { preHandler: requireSession }, async (request, reply) => {
    const { session } = request
    const flashes = session.flash()
    const views = session.increment('views')
    // written now rather than at onSend, so the page can show the document exactly as Redis holds it
    await session.save()
    // the plugin keys a session by the SHA-256 of its id (hashIds): Redis never holds the id itself
    const key = prefix + createHash('sha256').update(session.id).digest('base64url')
    const stored = await client.get(key)
    const ttl = (stored === null ? 0 : JSON.parse(stored).t) || DEFAULT_TTL
    const user = session.get('user')
    const liveSessions = perUser ? (await app.sessions.list(user)).length : undefined
    return html(reply, homePage({
      user,
      flashes,
      views,
      createdAt: session.createdAt,
      expiresAt: session.expiresAt,
      ttl,
      key,
      stored,
      liveSessions
    }))
  })

  app.get('/login', async (request, reply) => {
    if (request.session.has('user')) return reply.redirect('/')
    flashIfExpired(request)
    return html(reply, loginPage({ flashes: request.session.flash() }))
  })

  app.post('/login', async (request, reply) => {
    const username = String(request.body?.username ?? '').trim()
    const { session } = request
    if (username === '' || username.length > MAX_USERNAME) {
      session.flash('error', `A username is 1 to ${MAX_USERNAME} characters.`)
      return reply.redirect('/login', 303)
    }
    // a new id at every privilege change: an id planted before login is worthless after it
    await session.regenerate()
    session.set('user', username)
    session.flash('success', `Welcome, ${username}`)
    return reply.redirect('/', 303)
  })

  app.get('/members', {
    preHandler: requireSession,
    config: { loginMessage: 'Log in to see the members page.' }
  }, async (request, reply) => {
    const { session } = request
    return html(reply, membersPage({ user: session.get('user'), flashes: session.flash() }))
  })

  app.post('/ttl', { preHandler: requireSession }, async (request, reply) => {
    const seconds = Number(request.body?.ttl)
    const choice = TTL_CHOICES.find(c => c.seconds === seconds)
    if (choice === undefined) {
      request.session.flash('error', 'Pick one of the offered timeouts.')
    } else {
      request.session.setTtl(choice.seconds)
      request.session.flash('info', `This session now expires after ${ttlLabel(choice.seconds)} without a request.`)
    }
    return reply.redirect('/', 303)
  })

  app.post('/logout', async (request, reply) => {
    await request.session.destroy()
    // destroy() leaves the request a fresh session: the message travels in it to the next page
    request.session.flash('info', 'You are logged out.')
    return reply.redirect('/login', 303)
  })

  if (perUser) {
    app.post('/logout-everywhere', { preHandler: requireSession }, async (request, reply) => {
      await app.sessions.destroyAll(request.session.get('user'))
      await request.session.destroy()
      request.session.flash('info', 'You are logged out on every device.')
      return reply.redirect('/login', 303)
    })
  }

  return app
}
