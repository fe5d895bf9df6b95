import { test, type Test } from 'tap'
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import rateLimit from '@fastify/rate-limit'
import { layers, type SessionLayer } from './helpers/layers.js'

// @fastify/rate-limit 11 keyed by session id, on our plugin and on @fastify/session itself (the
// control). No socket needed: inject.
//
// Why the order works: rate-limit adds its check to each route as a route-level hook (in onRoute),
// and fastify runs a route's own hooks after the app-level ones. The session plugin's onRequest hook
// is app-level (fastify-plugin), so with rate-limit registered after it, the session is loaded before
// keyGenerator runs, with the default hook ('onRequest') as with 'preHandler'. Both are run here.

type Send = (url: string) => Promise<LightMyRequestResponse>

/** A client that keeps the latest `sid` cookie it was given, like a browser. */
function client (app: FastifyInstance): Send {
  let cookie: string | undefined
  return async (url) => {
    const res = await app.inject({ url, headers: cookie === undefined ? {} : { cookie } })
    const sid = res.cookies.find(c => c.name === 'sid')
    if (sid !== undefined) cookie = `sid=${sid.value}`
    return res
  }
}

async function limitedApp (t: Test, layer: SessionLayer, hook: 'onRequest' | 'preHandler'): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await layer.register(t, app)
  // `sessionId`, @fastify/session's name: it has no `id`, and an undefined key would put every
  // session in one bucket
  await app.register(rateLimit, { global: false, hook, keyGenerator: (request) => request.session.sessionId })
  app.get('/api', { config: { rateLimit: { max: 3, timeWindow: '1 minute' } } }, async (request) => {
    // written to, so that the session (and its id) outlives the request on every plugin
    const hits = ((request.session.get('hits') ?? 0) as number) + 1
    request.session.set('hits', hits)
    return { id: request.session.sessionId, hits }
  })
  app.get('/free', async (request) => ({ id: request.session.sessionId }))
  await app.ready()
  return app
}

for (const hook of ['onRequest', 'preHandler'] as const) {
  for (const layer of layers) {
    test(`hook ${hook}: one session gets 429 on its 4th request while another is still allowed (${layer.name})`, async (t) => {
      const app = await limitedApp(t, layer, hook)
      const alice = client(app)
      const bob = client(app)

      const first = await alice('/api')
      t.equal(first.statusCode, 200)
      const id = first.json().id
      t.type(id, 'string')
      t.equal(first.headers['x-ratelimit-remaining'], '2')
      const second = await alice('/api')
      const third = await alice('/api')
      t.same([second.statusCode, third.statusCode], [200, 200])
      t.same([second.json(), third.json()], [{ id, hits: 2 }, { id, hits: 3 }], 'one session throughout')
      t.equal(third.headers['x-ratelimit-remaining'], '0')

      const fourth = await alice('/api')
      t.equal(fourth.statusCode, 429, 'the 4th request of the minute is refused')
      t.equal(fourth.json().statusCode, 429)
      t.ok(Number(fourth.headers['retry-after']) > 0, 'with Retry-After')

      const other = await bob('/api')
      t.equal(other.statusCode, 200, 'another session is still allowed')
      t.not(other.json().id, id)
      t.equal(other.json().hits, 1)
      t.equal(other.headers['x-ratelimit-remaining'], '2', 'and counted on its own')

      t.equal((await alice('/api')).statusCode, 429, 'still refused')
      t.equal((await alice('/free')).statusCode, 200, 'routes without a limit are not affected')
    })
  }
}
