import type { Test } from 'tap'
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import fastifyFlash from '@fastify/flash'
import { bothLayers, type SessionLayer } from './helpers/layers.js'

// @fastify/flash 6 keeps its messages under the session key 'flash' with get/set; run on our
// plugin and on @fastify/session itself (the control). No socket needed: inject.

type Send = (method: 'GET' | 'POST', url: string, payload?: Record<string, unknown>) => Promise<LightMyRequestResponse>

/** A client that keeps the latest `sid` cookie it was given, like a browser. */
function client (app: FastifyInstance): Send {
  let cookie: string | undefined
  return async (method, url, payload) => {
    const res = await app.inject({ method, url, payload, headers: cookie === undefined ? {} : { cookie } })
    const sid = res.cookies.find(c => c.name === 'sid')
    if (sid !== undefined) cookie = `sid=${sid.value}`
    return res
  }
}

async function flashApp (t: Test, layer: SessionLayer): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await layer.register(t, app)
  await app.register(fastifyFlash)
  app.post('/flash', {
    schema: {
      body: {
        type: 'object',
        required: ['type', 'message'],
        properties: {
          type: { type: 'string', minLength: 1 },
          message: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
          args: { type: 'array', items: { type: 'string' } }
        }
      }
    }
  }, async (request) => {
    const { type, message, args = [] } = request.body as { type: string, message: string | string[], args?: string[] }
    const count = Array.isArray(message) ? request.flash(type, message) : request.flash(type, message, ...args)
    return { count }
  })
  app.get('/flash/:type', async (request, reply) => reply.flash((request.params as { type: string }).type))
  app.get('/flash', async (_request, reply) => reply.flash())
  app.get('/stored', async (request) => ({ flash: request.session.get('flash') ?? null }))
  await app.ready()
  return app
}

bothLayers('a flash message is returned once, on the next request', async (t, layer) => {
  const app = await flashApp(t, layer)
  const send = client(app)
  const set = await send('POST', '/flash', { type: 'info', message: 'x' })
  t.equal(set.statusCode, 200)
  t.same(set.json(), { count: 1 })
  t.same((await send('GET', '/stored')).json(), { flash: { info: ['x'] } }, 'kept in the session under flash')
  const read = await send('GET', '/flash/info')
  t.equal(read.statusCode, 200)
  t.same(read.json(), ['x'])
  const again = await send('GET', '/flash/info')
  t.same(again.json(), [], 'then it is gone')
  t.same((await send('GET', '/stored')).json(), { flash: {} })
})

bothLayers('messages pile up by type, take format arguments, and reply.flash() takes the rest', async (t, layer) => {
  const app = await flashApp(t, layer)
  const send = client(app)
  t.same((await send('POST', '/flash', { type: 'info', message: 'a' })).json(), { count: 1 })
  t.same((await send('POST', '/flash', { type: 'info', message: 'b' })).json(), { count: 2 })
  t.same((await send('POST', '/flash', { type: 'error', message: 'Hello %s, %d new', args: ['Ann', '3'] })).json(), { count: 1 })
  t.same((await send('POST', '/flash', { type: 'warning', message: ['w1', 'w2'] })).json(), { count: 2 })

  const other = client(app)
  t.same((await other('GET', '/flash')).json(), {}, 'another session sees none of them')

  t.same((await send('GET', '/flash/info')).json(), ['a', 'b'])
  t.same((await send('GET', '/flash')).json(), { error: ['Hello Ann, 3 new'], warning: ['w1', 'w2'] })
  t.same((await send('GET', '/flash')).json(), {}, 'all read')
  t.same((await send('GET', '/flash/error')).json(), [])
})

bothLayers('a flash without a message is refused with a 400', async (t, layer) => {
  const app = await flashApp(t, layer)
  const send = client(app)
  const missing = await send('POST', '/flash', { type: 'info' })
  t.equal(missing.statusCode, 400)
  t.equal(missing.json().code, 'FST_ERR_VALIDATION')
  const badType = await send('POST', '/flash', { type: '', message: 'x' })
  t.equal(badType.statusCode, 400)
  t.same((await send('GET', '/flash')).json(), {}, 'nothing was flashed')
})
