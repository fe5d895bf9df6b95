import type { FastifyInstance } from 'fastify'

// The routes many tests share. A test keeps a route of its own when what that route does is the
// point of the test.

/**
 * GET /read (or `url`): the id, whether the session is new, and its data; POST /write: sets each
 * field of the body, answers `{ id }`; POST /increment: increments `n`, answers `{ n }`; GET
 * /untouched: never looks at the session.
 */
export function dataRoutes (app: FastifyInstance): void {
  readRoute(app)
  app.post('/write', async (req) => {
    for (const [key, value] of Object.entries(req.body as Record<string, unknown>)) req.session.set(key, value)
    return { id: req.session.id }
  })
  app.post('/increment', async (req) => ({ n: req.session.increment('n') }))
  app.get('/untouched', async () => 'ok')
}

/** GET `url`: the id, whether the session is new, and its data. */
export function readRoute (app: FastifyInstance, url = '/read'): void {
  app.get(url, async (req) => ({ id: req.session.id, isNew: req.session.isNew, data: req.session.toJSON() }))
}

/**
 * POST /login: a new id, keeping the `keep` keys of the session (none by default), then each field
 * of the body (if any) set; answers `{ id }`.
 */
export function loginRoute (app: FastifyInstance, keep?: string[]): void {
  app.post('/login', async (req) => {
    await req.session.regenerate(keep)
    for (const [key, value] of Object.entries(req.body ?? {})) req.session.set(key, value)
    return { id: req.session.id }
  })
}

/** POST /logout: destroys the session; answers 'bye'. */
export function logoutRoute (app: FastifyInstance): void {
  app.post('/logout', async (req) => {
    await req.session.destroy()
    return 'bye'
  })
}

/** `method` /touch: `touch()`; answers 'ok'. */
export function touchRoute (app: FastifyInstance, method: 'GET' | 'POST' = 'GET'): void {
  app.route({ method, url: '/touch', handler: async (req) => { req.session.touch(); return 'ok' } })
}
