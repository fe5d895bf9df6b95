import { test, type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyCookie from '@fastify/cookie'
import fastifySession from '@fastify/session'
import fastifySecureSession from '@fastify/secure-session'
import fastifyCsrf from '@fastify/csrf-protection'
import redisSession from '../lib/index.js'
import { connect, uniquePrefix, SECRET } from './helpers/app.js'
import { keepCookies } from './helpers/layers.js'

// @fastify/csrf-protection 8 in both of its session modes, over real HTTP:
// - sessionPlugin '@fastify/session' keeps its secret property-style (`request.session._csrf = secret`);
// - sessionPlugin '@fastify/secure-session' uses get/set and, given options, `request.session.options(opts)`.
// Each mode runs on our plugin and on the plugin it was written for (the control).

interface SessionLayer {
  name: string
  register: (t: Test, app: FastifyInstance) => Promise<void>
}

const ours: SessionLayer = {
  name: 'fastify-session-redis',
  register: async (t, app) => {
    await app.register(redisSession, { client: await connect(t), secret: SECRET, prefix: uniquePrefix() })
  }
}
const fastifySessionControl: SessionLayer = {
  name: '@fastify/session (control)',
  register: async (_t, app) => {
    await app.register(fastifyCookie)
    await app.register(fastifySession, { secret: SECRET, cookieName: 'sid', cookie: { secure: false } })
  }
}
const secureSessionControl: SessionLayer = {
  name: '@fastify/secure-session (control)',
  register: async (_t, app) => {
    await app.register(fastifySecureSession, { key: Buffer.alloc(32, 1), cookie: { path: '/' } })
  }
}

interface Reply {
  status: number
  body: string
  json: <T = Record<string, unknown>>() => T
}

/** fetch with a cookie jar; every request is bounded by a timeout. */
class Browser {
  readonly jar = new Map<string, string>()
  constructor (readonly base: string) {}

  async request (path: string, { method = 'GET', json, headers = {} }: { method?: string, json?: unknown, headers?: Record<string, string> } = {}): Promise<Reply> {
    const sent: Record<string, string> = { ...headers }
    if (this.jar.size > 0) sent.cookie = [...this.jar].map(([name, value]) => `${name}=${value}`).join('; ')
    if (json !== undefined) sent['content-type'] = 'application/json'
    const res = await fetch(this.base + path, {
      method,
      headers: sent,
      body: json === undefined ? undefined : JSON.stringify(json),
      redirect: 'manual',
      signal: AbortSignal.timeout(10_000)
    })
    keepCookies(this.jar, res)
    const body = await res.text()
    return { status: res.status, body, json: () => JSON.parse(body) }
  }
}

async function listen (app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  return `http://127.0.0.1:${port}`
}

async function token (browser: Browser): Promise<string> {
  const form = await browser.request('/form')
  if (form.status !== 200) throw new Error(`GET /form answered ${form.status}: ${form.body}`)
  return form.json<{ token: string }>().token
}

/** A missing token, a forged one, another session's, and a token without any session: each 403. */
async function assertRefused (t: Test, alice: Browser, aliceToken: string, bobToken: string): Promise<void> {
  const missing = await alice.request('/transfer', { method: 'POST', json: {} })
  t.equal(missing.status, 403)
  t.equal(missing.json().code, 'FST_CSRF_INVALID_TOKEN')
  const forged = await alice.request('/transfer', { method: 'POST', json: { _csrf: 'abcdefghijkl-abcdefghijklmnopqrstuvwxyz0123' } })
  t.equal(forged.status, 403)
  t.equal(forged.json().code, 'FST_CSRF_INVALID_TOKEN')
  const foreign = await alice.request('/transfer', { method: 'POST', json: {}, headers: { 'csrf-token': bobToken } })
  t.equal(foreign.status, 403, "bob's token does not pass for alice")
  t.equal(foreign.json().code, 'FST_CSRF_INVALID_TOKEN')
  const sessionless = await new Browser(alice.base).request('/transfer', { method: 'POST', json: {}, headers: { 'csrf-token': aliceToken } })
  t.equal(sessionless.status, 403, 'no session, no secret')
  t.equal(sessionless.json().code, 'FST_CSRF_MISSING_SECRET')
}

// --- sessionPlugin: '@fastify/session' ---------------------------------------------------------

async function sessionModeApp (t: Test, layer: SessionLayer): Promise<string> {
  const app = Fastify()
  t.teardown(() => app.close())
  await layer.register(t, app)
  await app.register(fastifyCsrf, { sessionPlugin: '@fastify/session' })
  app.get('/form', async (_request, reply) => ({ token: reply.generateCsrf() }))
  app.get('/stored', async (request) => ({ secret: typeof request.session.get('_csrf') }))
  app.post('/transfer', { preHandler: app.csrfProtection }, async () => ({ ok: true }))
  return listen(app)
}

for (const layer of [ours, fastifySessionControl]) {
  test(`sessionPlugin @fastify/session: a GET issues a token that a POST passes with (${layer.name})`, async (t) => {
    const base = await sessionModeApp(t, layer)
    const browser = new Browser(base)
    const first = await token(browser)
    t.type(first, 'string')
    t.ok(first.length > 10, 'a real token')
    t.same((await browser.request('/stored')).json(), { secret: 'string' }, 'the secret is kept in the session under _csrf')
    const second = await token(browser)
    t.not(second, first, 'each token is salted')

    const byHeader = await browser.request('/transfer', { method: 'POST', json: {}, headers: { 'csrf-token': first } })
    t.equal(byHeader.status, 200)
    t.same(byHeader.json(), { ok: true })
    const byBody = await browser.request('/transfer', { method: 'POST', json: { _csrf: second } })
    t.equal(byBody.status, 200)
    t.same(byBody.json(), { ok: true })
    const again = await browser.request('/transfer', { method: 'POST', json: {}, headers: { 'x-csrf-token': first } })
    t.equal(again.status, 200, 'a token stays valid for its session')
  })

  test(`sessionPlugin @fastify/session: missing, forged and foreign tokens get 403 (${layer.name})`, async (t) => {
    const base = await sessionModeApp(t, layer)
    const alice = new Browser(base)
    const bob = new Browser(base)
    const aliceToken = await token(alice)
    const bobToken = await token(bob)

    await assertRefused(t, alice, aliceToken, bobToken)

    const own = await alice.request('/transfer', { method: 'POST', json: {}, headers: { 'csrf-token': aliceToken } })
    t.equal(own.status, 200, 'her own token still passes')
  })
}

// --- sessionPlugin: '@fastify/secure-session', with userInfo ------------------------------------

async function secureSessionModeApp (t: Test, layer: SessionLayer): Promise<string> {
  const app = Fastify()
  t.teardown(() => app.close())
  await layer.register(t, app)
  await app.register(fastifyCsrf, {
    sessionPlugin: '@fastify/secure-session',
    getUserInfo: (request) => request.session.get('username') as string
  })
  app.post('/login', async (request) => {
    const { username } = request.body as { username: string }
    request.session.set('username', username)
    return { username }
  })
  app.get('/form', async (request, reply) => {
    const username = request.session.get('username') as string | undefined
    if (username === undefined) return reply.code(401).send({ error: 'log in first' })
    // calls request.session.options({ userInfo }) on the way
    return { token: reply.generateCsrf({ userInfo: username }) }
  })
  app.get('/stored', async (request) => ({ secret: typeof request.session.get('_csrf'), username: request.session.get('username') }))
  app.post('/transfer', { preHandler: app.csrfProtection }, async (request) => ({ ok: true, by: request.session.get('username') }))
  return listen(app)
}

for (const layer of [ours, secureSessionControl]) {
  test(`sessionPlugin @fastify/secure-session: a token bound to the user passes (${layer.name})`, async (t) => {
    const base = await secureSessionModeApp(t, layer)
    const alice = new Browser(base)
    t.equal((await alice.request('/form')).status, 401, 'no user, no token')
    t.equal((await alice.request('/login', { method: 'POST', json: { username: 'alice' } })).status, 200)
    const form = await alice.request('/form')
    t.equal(form.status, 200, 'generateCsrf({ userInfo }) works')
    const aliceToken = String(form.json().token)
    t.ok(aliceToken.length > 10, 'a real token')
    t.same((await alice.request('/stored')).json(), { secret: 'string', username: 'alice' })

    const byHeader = await alice.request('/transfer', { method: 'POST', json: {}, headers: { 'csrf-token': aliceToken } })
    t.equal(byHeader.status, 200)
    t.same(byHeader.json(), { ok: true, by: 'alice' })
    const byBody = await alice.request('/transfer', { method: 'POST', json: { _csrf: aliceToken } })
    t.equal(byBody.status, 200)
    t.same(byBody.json(), { ok: true, by: 'alice' })
  })

  test(`sessionPlugin @fastify/secure-session: missing, forged, foreign and other-user tokens get 403 (${layer.name})`, async (t) => {
    const base = await secureSessionModeApp(t, layer)
    const alice = new Browser(base)
    const bob = new Browser(base)
    await alice.request('/login', { method: 'POST', json: { username: 'alice' } })
    await bob.request('/login', { method: 'POST', json: { username: 'bob' } })
    const aliceToken = await token(alice)
    const bobToken = await token(bob)

    await assertRefused(t, alice, aliceToken, bobToken)

    // same session and secret, another user: the token was bound to alice
    await alice.request('/login', { method: 'POST', json: { username: 'mallory' } })
    const otherUser = await alice.request('/transfer', { method: 'POST', json: {}, headers: { 'csrf-token': aliceToken } })
    t.equal(otherUser.status, 403, "alice's token does not pass once the session names another user")
    t.equal(otherUser.json().code, 'FST_CSRF_INVALID_TOKEN')
  })
}
