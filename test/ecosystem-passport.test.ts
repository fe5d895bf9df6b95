import type { Test } from 'tap'
import Fastify from 'fastify'
import passportModule from '@fastify/passport'
import { Strategy as LocalStrategy } from 'passport-local'
import { bothLayers, keepCookies, type SessionLayer } from './helpers/layers.js'

// @fastify/passport 4 + passport-local, written as its README shows for @fastify/session, run
// over real HTTP on our plugin and on @fastify/session itself (the control): both must agree.

interface Reply {
  status: number
  location: string | null
  /** The `sid` value this response set, if it set one. */
  sid: string | undefined
  body: string
  json: <T = Record<string, unknown>>() => T
}

/** fetch with a cookie jar, redirects left to the test; every request is bounded by a timeout. */
class Browser {
  readonly jar = new Map<string, string>()
  constructor (readonly base: string) {}

  async request (path: string, { method = 'GET', json }: { method?: string, json?: unknown } = {}): Promise<Reply> {
    const headers: Record<string, string> = {}
    if (this.jar.size > 0) headers.cookie = [...this.jar].map(([name, value]) => `${name}=${value}`).join('; ')
    if (json !== undefined) headers['content-type'] = 'application/json'
    const res = await fetch(this.base + path, {
      method,
      headers,
      body: json === undefined ? undefined : JSON.stringify(json),
      redirect: 'manual',
      signal: AbortSignal.timeout(10_000)
    })
    const sid = keepCookies(this.jar, res).get('sid')
    const body = await res.text()
    return { status: res.status, location: res.headers.get('location'), sid, body, json: () => JSON.parse(body) }
  }

  /** A second browser holding a copy of this one's cookies (a stolen or stale cookie). */
  clone (): Browser {
    const copy = new Browser(this.base)
    for (const [name, value] of this.jar) copy.jar.set(name, value)
    return copy
  }
}

interface User { id: number, username: string }
const users = [{ id: 1, username: 'alice', password: 'secret' }, { id: 2, username: 'bob', password: 'hunter2' }]

function findUser (username: unknown, password: unknown): User | undefined {
  const found = users.find(u => u.username === username && u.password === password)
  return found === undefined ? undefined : { id: found.id, username: found.username }
}

interface Me { user: User | null, authenticated: boolean, cart: string[] | null, passport: number | null }

/** The app of the README: a local strategy, serializer/deserializer, redirect on success and failure. */
async function passportApp (t: Test, layer: SessionLayer, options: { clearSessionIgnoreFields?: string[] } = {}): Promise<Browser> {
  const app = Fastify()
  t.teardown(() => app.close())
  await layer.register(t, app)
  const fastifyPassport = new passportModule.Authenticator(options)
  fastifyPassport.use('local', new LocalStrategy((username, password, done) => {
    done(null, findUser(username, password) ?? false)
  }))
  fastifyPassport.registerUserSerializer(async (user: User) => user.id)
  fastifyPassport.registerUserDeserializer(async (id: number) => {
    const found = users.find(u => u.id === id)
    return found === undefined ? null : { id: found.id, username: found.username }
  })
  await app.register(fastifyPassport.initialize())
  await app.register(fastifyPassport.secureSession())

  app.post('/cart', async (request) => {
    const { item } = request.body as { item: string }
    const cart = (request.session.get('cart') ?? []) as string[]
    request.session.set('cart', [...cart, item])
    return { cart: [...cart, item] }
  })
  app.get('/me', async (request): Promise<Me> => ({
    user: (request.user as User | undefined) ?? null,
    authenticated: request.isAuthenticated(),
    cart: (request.session.get('cart') ?? null) as string[] | null,
    passport: (request.session.get('passport') ?? null) as number | null
  }))
  app.get('/login', async () => 'login form')
  app.post('/login', {
    preValidation: fastifyPassport.authenticate('local', { successRedirect: '/me', failureRedirect: '/login' })
  }, async () => 'unreachable: the strategy redirects')
  // no redirects: a JSON API answers 401 itself
  app.post('/api/login', { preValidation: fastifyPassport.authenticate('local') }, async (request) => ({ user: request.user }))
  // does not return the reply: fastify sends it once the promise settles, which must not race the cookie
  app.post('/login-async', async (request, reply) => {
    const { username, password } = request.body as { username: string, password: string }
    const user = findUser(username, password)
    if (user === undefined) {
      reply.code(401).send({ error: 'bad credentials' })
      return
    }
    await request.logIn(user)
    reply.redirect('/me')
  })
  app.post('/logout', async (request) => {
    await request.logout()
    return { authenticated: request.isAuthenticated(), user: request.user ?? null }
  })

  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  return new Browser(`http://127.0.0.1:${port}`)
}

bothLayers('login issues a new session id, drops pre-login data and sets request.user', async (t, layer) => {
  const browser = await passportApp(t, layer)
  const cart = await browser.request('/cart', { method: 'POST', json: { item: 'apple' } })
  t.equal(cart.status, 200)
  const preLoginSid = cart.sid
  t.ok(preLoginSid, 'the cart starts a session')
  const anonymous = await browser.request('/me')
  t.same(anonymous.json<Me>(), { user: null, authenticated: false, cart: ['apple'], passport: null })
  const stale = browser.clone()

  const login = await browser.request('/login', { method: 'POST', json: { username: 'alice', password: 'secret' } })
  t.equal(login.status, 302)
  t.equal(login.location, '/me')
  t.equal(login.body, '', 'the route handler does not run after the strategy redirected')
  t.ok(login.sid, 'the login response sets the session cookie')
  t.not(login.sid, preLoginSid, 'a new session id at login')

  const me = await browser.request('/me')
  t.equal(me.status, 200)
  t.same(me.json<Me>(), { user: { id: 1, username: 'alice' }, authenticated: true, cart: null, passport: 1 },
    'request.user is set; the cart is gone with the default clearSessionOnLogin')

  const old = await stale.request('/me')
  t.equal(old.status, 200)
  t.same(old.json<Me>(), { user: null, authenticated: false, cart: null, passport: null }, 'the pre-login cookie logs nobody in')
})

bothLayers('logout clears the user and the data, and the logged-in cookie stops working', async (t, layer) => {
  const browser = await passportApp(t, layer)
  // the JSON login returns its reply: this test is about logout, not about redirects
  const login = await browser.request('/api/login', { method: 'POST', json: { username: 'bob', password: 'hunter2' } })
  t.equal(login.status, 200)
  t.ok(login.sid, 'logged in under a new session id')
  await browser.request('/cart', { method: 'POST', json: { item: 'pear' } })
  const before = await browser.request('/me')
  t.same(before.json<Me>(), { user: { id: 2, username: 'bob' }, authenticated: true, cart: ['pear'], passport: 2 })
  const loggedIn = browser.clone()

  const logout = await browser.request('/logout', { method: 'POST' })
  t.equal(logout.status, 200)
  t.same(logout.json(), { authenticated: false, user: null }, 'isAuthenticated() is false in the logout request already')
  // @fastify/session stores a new, empty session; this plugin stores nothing and clears the cookie
  t.not(logout.sid, undefined, 'logout sets the session cookie: to a new id, or empty to clear it')
  t.not(logout.sid, login.sid, 'the logged-in session id is gone from the browser')

  const after = await browser.request('/me')
  t.same(after.json<Me>(), { user: null, authenticated: false, cart: null, passport: null }, 'user and data are gone')
  const replayed = await loggedIn.request('/me')
  t.same(replayed.json<Me>(), { user: null, authenticated: false, cart: null, passport: null }, 'the logged-in cookie is dead')
})

bothLayers('login keeps only the keys passport names: clearSessionIgnoreFields survive, the rest is dropped', async (t, layer) => {
  const plain = await passportApp(t, layer)
  await plain.request('/cart', { method: 'POST', json: { item: 'plum' } })
  // the JSON login returns its reply: this test is about what regenerate keeps, not about redirects
  const login = await plain.request('/api/login', { method: 'POST', json: { username: 'alice', password: 'secret' } })
  t.equal(login.status, 200)
  t.same((await plain.request('/me')).json<Me>(), { user: { id: 1, username: 'alice' }, authenticated: true, cart: null, passport: 1 })

  const keeping = await passportApp(t, layer, { clearSessionIgnoreFields: ['cart'] })
  await keeping.request('/cart', { method: 'POST', json: { item: 'plum' } })
  const before = keeping.jar.get('sid')
  const kept = await keeping.request('/api/login', { method: 'POST', json: { username: 'alice', password: 'secret' } })
  t.equal(kept.status, 200)
  t.ok(kept.sid, 'a new session id all the same')
  t.not(kept.sid, before)
  t.same((await keeping.request('/me')).json<Me>(), { user: { id: 1, username: 'alice' }, authenticated: true, cart: ['plum'], passport: 1 },
    'the cart is kept when passport is told to keep it')
})

bothLayers('a wrong password redirects to failureRedirect without logging in', async (t, layer) => {
  const browser = await passportApp(t, layer)
  await browser.request('/cart', { method: 'POST', json: { item: 'fig' } })
  const wrong = await browser.request('/login', { method: 'POST', json: { username: 'alice', password: 'nope' } })
  t.equal(wrong.status, 302)
  t.equal(wrong.location, '/login')
  const unknown = await browser.request('/login', { method: 'POST', json: { username: 'mallory', password: 'secret' } })
  t.equal(unknown.status, 302)
  t.equal(unknown.location, '/login')
  const missing = await browser.request('/login', { method: 'POST', json: {} })
  t.equal(missing.status, 302, 'missing credentials fail like wrong ones')
  t.equal(missing.location, '/login')
  const me = await browser.request('/me')
  t.same(me.json<Me>(), { user: null, authenticated: false, cart: ['fig'], passport: null }, 'still anonymous, cart kept')
})

bothLayers('bad input to a login API gets a 4xx, never a hang', async (t, layer) => {
  const browser = await passportApp(t, layer)
  const wrong = await browser.request('/api/login', { method: 'POST', json: { username: 'alice', password: 'nope' } })
  t.equal(wrong.status, 401)
  const res = await fetch(`${browser.base}/api/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"username":',
    signal: AbortSignal.timeout(10_000)
  })
  t.equal(res.status, 400, 'malformed JSON')
  await res.body?.cancel()
  const ok = await browser.request('/api/login', { method: 'POST', json: { username: 'alice', password: 'secret' } })
  t.equal(ok.status, 200)
  t.same(ok.json(), { user: { id: 1, username: 'alice' } })
  const me = await browser.request('/me')
  t.equal(me.json<Me>().authenticated, true)
})

bothLayers('an async login route that does not return the reply still sends the cookie with its redirect', async (t, layer) => {
  const browser = await passportApp(t, layer)
  const login = await browser.request('/login-async', { method: 'POST', json: { username: 'alice', password: 'secret' } })
  t.equal(login.status, 302)
  t.equal(login.location, '/me')
  t.ok(login.sid, 'Set-Cookie came with the redirect')
  const me = await browser.request('/me')
  t.same(me.json<Me>(), { user: { id: 1, username: 'alice' }, authenticated: true, cart: null, passport: 1 })
  const stranger = new Browser(browser.base)
  const denied = await stranger.request('/login-async', { method: 'POST', json: { username: 'alice', password: 'x' } })
  t.equal(denied.status, 401)
  t.equal((await stranger.request('/me')).json<Me>().authenticated, false, 'a failed login logs nobody in')
})

bothLayers('200 parallel logins on a route that does not return the reply each get one 302 with a cookie', async (t, layer) => {
  const browser = await passportApp(t, layer)
  const N = 200
  const outcomes = await Promise.all(Array.from({ length: N }, async () => {
    try {
      return await new Browser(browser.base).request('/login-async', { method: 'POST', json: { username: 'bob', password: 'hunter2' } })
    } catch (err) {
      return err as Error
    }
  }))
  const failed = outcomes.filter(o => o instanceof Error)
  t.same(failed.map(e => `${e.name}: ${e.message}`), [], 'every request got a response in time')
  const replies = outcomes.filter((o): o is Reply => !(o instanceof Error))
  t.equal(replies.filter(r => r.status === 302 && r.location === '/me').length, N, 'all 302 to /me')
  const sids = replies.map(r => r.sid).filter(sid => sid !== undefined)
  t.equal(sids.length, N, 'each carries a session cookie')
  t.equal(new Set(sids).size, N, 'each its own session')
})
