import { test } from 'tap'
import { buildApp, sessionCookie } from '../helpers/app.js'

// On a route with `config: { session: false }` `request.session` was null while its type promised a
// session: the route then failed later with a TypeError that named nothing.

test('reading request.session where there is none fails with a coded error that says why', async (t) => {
  const { app } = await buildApp(t, {
    before: async (app) => {
      app.addHook('onRequest', async (req) => {
        if (req.url !== '/early') return
        try {
          return req.session
        } catch (err) {
          req.headers['x-early'] = (err as Error).message
        }
      })
    },
    routes (app) {
      app.get('/health', { config: { session: false } }, async (req) => req.session.get('user') ?? 'none')
      app.get('/early', async (req) => ({ early: req.headers['x-early'] ?? null }))
    }
  })
  const login = await app.inject({ method: 'POST', url: '/write', payload: { user: 'ada' } })
  for (const cookie of [undefined, sessionCookie(login)]) {
    const res = await app.inject({ url: '/health', headers: cookie === undefined ? {} : { cookie } })
    t.equal(res.statusCode, 500)
    t.equal(res.json().code, 'FST_REDIS_SESSION_NONE')
    t.match(res.json().message, /config: \{ session: false \}/, 'the message names the route option')
  }
  const early = await app.inject({ url: '/early' })
  t.match(early.json().early, /before the plugin's onRequest hook/, 'a hook that runs before the plugin\'s is told so')
})

test('a hook shared by every route asks the route option first', async (t) => {
  const { app } = await buildApp(t, {
    routes (app) {
      app.addHook('preHandler', async (req, reply) => {
        if (req.routeOptions.config.session !== false) reply.header('x-user', String(req.session.get('user') ?? 'anonymous'))
      })
      app.get('/health', { config: { session: false } }, async () => 'ok')
    }
  })
  const login = await app.inject({ method: 'POST', url: '/write', payload: { user: 'ada' } })
  const health = await app.inject({ url: '/health', headers: { cookie: sessionCookie(login) } })
  t.equal(health.statusCode, 200)
  t.equal(health.headers['x-user'], undefined)
  const read = await app.inject({ url: '/read', headers: { cookie: sessionCookie(login) } })
  t.equal(read.headers['x-user'], 'ada')
})
