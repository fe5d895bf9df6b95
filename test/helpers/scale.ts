import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import type { Cluster, Redis } from 'ioredis'
import type { Test } from 'tap'
import type { RedisSessionOptions } from '../../types/index.js'
import { buildApp, sessionKey } from './app.js'
import { waitFor } from './redis-server.js'
import { loginRoute, logoutRoute, readRoute } from './routes.js'

/**
 * Login, logout and account routes: POST /login `{ userId }` (regenerate, then set), POST /logout
 * (destroy), GET /me, GET /devices (`app.sessions.list` of the current user), POST
 * /logout-everywhere (`destroyAll` but this session), POST /regenerate.
 */
function accountRoutes (app: FastifyInstance): void {
  loginRoute(app)
  logoutRoute(app)
  readRoute(app, '/me')
  app.get('/devices', async (req) => await app.sessions.list(req.session.get('userId') as string))
  app.post('/logout-everywhere', async (req) => ({
    count: await app.sessions.destroyAll(req.session.get('userId') as string, { except: req.session.id })
  }))
  app.post('/regenerate', async (req) => {
    await req.session.regenerate(Object.keys(req.session.toJSON()))
    return { id: req.session.id }
  })
}

/**
 * buildApp's app (its generic routes: POST /write, POST /increment…) on `client` (any ioredis
 * client, Cluster included), with the account routes and `routes`.
 */
export async function accountApp (t: Test, client: Redis | Cluster, session: Partial<RedisSessionOptions>,
  routes?: (app: FastifyInstance) => void): Promise<FastifyInstance> {
  const { app } = await buildApp(t, {
    client,
    session,
    routes: (app) => {
      accountRoutes(app)
      routes?.(app)
    }
  })
  return app
}

/** A browser: keeps the session cookie between the requests it sends to any app. */
export class Browser {
  cookie: string | undefined
  readonly userAgent: string

  constructor (userAgent = 'test-browser') {
    this.userAgent = userAgent
  }

  async send (app: FastifyInstance, method: 'GET' | 'POST', url: string, payload?: object): Promise<LightMyRequestResponse> {
    const headers: Record<string, string> = { 'user-agent': this.userAgent }
    if (this.cookie !== undefined) headers.cookie = this.cookie
    const res = await app.inject({ method, url, headers, payload })
    const set = res.cookies.find(c => c.name === 'sid')
    // a cleared cookie comes back empty
    if (set !== undefined) this.cookie = set.value === '' ? undefined : `sid=${set.value}`
    return res
  }
}

/**
 * The behaviours every deployment must keep, run through two app instances on their own clients
 * (`a`, `b`) of one Redis deployment: create, read, write, regenerate, destroy, expiry, no lost
 * updates, the per-user index and count, all under `prefix`.
 */
export async function coreBehaviours (t: Test, a: Redis | Cluster, b: Redis | Cluster, prefix: string): Promise<void> {
  const options = { prefix, userKey: 'userId' }
  const appA = await accountApp(t, a, options)
  const appB = await accountApp(t, b, options)
  const browser = new Browser()

  const login = await browser.send(appA, 'POST', '/login', { userId: 'ann' })
  const id = login.json().id
  t.ok(await a.exists(sessionKey(prefix, id)), 'created on A')
  t.same((await browser.send(appB, 'GET', '/me')).json().data, { userId: 'ann' }, 'read on B')
  await browser.send(appB, 'POST', '/write', { theme: 'dark' })
  t.same((await browser.send(appA, 'GET', '/me')).json().data, { userId: 'ann', theme: 'dark' }, 'written on B, read on A')

  const newId = (await browser.send(appB, 'POST', '/regenerate')).json().id
  t.not(newId, id)
  t.equal(await a.exists(sessionKey(prefix, id)), 0, 'regenerated: the old key is gone')
  t.same((await browser.send(appA, 'GET', '/me')).json().data, { userId: 'ann', theme: 'dark' }, 'the data moved with it')

  const counter = new Browser()
  await counter.send(appA, 'POST', '/increment')
  const results = await Promise.all(Array.from({ length: 99 }, () => counter.send(appA, 'POST', '/increment')))
  t.ok(results.every(res => res.statusCode === 200))
  t.same((await counter.send(appB, 'GET', '/me')).json().data, { n: 100 }, '100 parallel increments on one instance')
  const both = await Promise.all(Array.from({ length: 100 }, (_, i) => counter.send(i % 2 === 0 ? appA : appB, 'POST', '/increment')))
  t.ok(both.every(res => res.statusCode === 200))
  t.same((await counter.send(appA, 'GET', '/me')).json().data, { n: 200 }, '50 more on each instance')

  const phone = new Browser()
  await phone.send(appB, 'POST', '/login', { userId: 'ann' })
  t.equal((await appA.sessions.list('ann')).length, 2, 'the user index spans instances')
  t.equal(await appA.sessions.count(), 3)
  t.same((await browser.send(appA, 'POST', '/logout-everywhere')).json(), { count: 1 })
  t.equal((await phone.send(appB, 'GET', '/me')).json().isNew, true, 'logged out everywhere')

  await browser.send(appA, 'POST', '/logout')
  const after = (await browser.send(appB, 'GET', '/me')).json()
  t.equal(after.isNew, true, 'logged out on A: B sees it gone')
  t.same(after.data, {})
  t.equal(await a.exists(sessionKey(prefix, newId)), 0)

  const short = await accountApp(t, a, { prefix, ttl: 1 })
  const brief = new Browser()
  const briefId = (await brief.send(short, 'POST', '/write', { x: 1 })).json().id
  const pttl = await a.pttl(sessionKey(prefix, briefId))
  t.ok(pttl > 500 && pttl <= 1000, `a 1 s TTL (PTTL ${pttl} ms)`)
  await waitFor('the session to expire', async () => await a.exists(sessionKey(prefix, briefId)) === 0, { timeout: 5000 })
  t.equal(await a.exists(sessionKey(prefix, briefId)), 0, 'expired')
  t.equal((await brief.send(short, 'GET', '/me')).json().isNew, true, 'an expired session reads as new')
}
