import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import type { Cluster, Redis } from 'ioredis'
import type { Test } from 'tap'
import redisSession from '../../lib/index.js'
import type { RedisSessionOptions } from '../../types/index.js'
import { SECRET } from './app.js'

/**
 * Login, logout and account routes: POST /login `{ userId }` (regenerate, then set), POST /logout
 * (destroy), GET /me, GET /devices (`app.sessions.list` of the current user), POST
 * /logout-everywhere (`destroyAll` but this session), POST /increment (`n`), POST /regenerate.
 */
export function accountRoutes (app: FastifyInstance): void {
  app.post('/login', async (req) => {
    await req.session.regenerate()
    req.session.set('userId', (req.body as { userId: unknown }).userId)
    return { id: req.session.id }
  })
  app.post('/logout', async (req) => {
    await req.session.destroy()
    return 'bye'
  })
  app.get('/me', async (req) => ({ id: req.session.id, isNew: req.session.isNew, data: req.session.toJSON() }))
  app.get('/devices', async (req) => await app.sessions.list(req.session.get('userId') as string))
  app.post('/logout-everywhere', async (req) => ({
    count: await app.sessions.destroyAll(req.session.get('userId') as string, { except: req.session.id })
  }))
  app.post('/increment', async (req) => ({ n: req.session.increment('n') }))
  app.post('/regenerate', async (req) => {
    await req.session.regenerate()
    return { id: req.session.id }
  })
}

/** An app with the plugin on `client` (any ioredis client, Cluster included), the account routes and `routes`. */
export async function accountApp (t: Test, client: Redis | Cluster, session: Partial<RedisSessionOptions>,
  routes?: (app: FastifyInstance) => void): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(redisSession, { client, secret: SECRET, ...session })
  accountRoutes(app)
  app.post('/write', async (req) => {
    for (const [key, value] of Object.entries(req.body as Record<string, unknown>)) req.session.set(key, value)
    return { id: req.session.id }
  })
  routes?.(app)
  await app.ready()
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
