import { test, type Test } from 'tap'
import { Type, type TObject } from '@sinclair/typebox'
import type { FastifyError } from 'fastify'
import { buildApp, keysUnder, sessionCookie, type TestApp, sessionKey } from './helpers/app.js'

const schema = Type.Object({
  user: Type.Object({ id: Type.Integer(), roles: Type.Array(Type.String()) }),
  views: Type.Integer({ minimum: 0, maximum: 2 }),
  theme: Type.Union([Type.Literal('light'), Type.Literal('dark')])
}, { additionalProperties: false })

/**
 * An app with the schema and a `/try` route: it sets each key of the body in turn and reports, for
 * the first one that throws, the error and what the session looked like right after.
 */
async function schemaApp (t: Test, session: TObject = schema): Promise<TestApp> {
  return buildApp(t, {
    session: { schema: session },
    routes: (app) => {
      app.post('/try', async (req) => {
        for (const [key, value] of Object.entries(req.body as Record<string, unknown>)) {
          try {
            req.session.set(key, value)
          } catch (err) {
            const { code, message } = err as FastifyError
            return { code, message, has: req.session.has(key), data: req.session.toJSON(), modified: req.session.isModified() }
          }
        }
        return { data: req.session.toJSON() }
      })
      app.post('/count', async (req) => {
        try {
          return { n: req.session.increment((req.query as { key: string }).key) }
        } catch (err) {
          const { code, message } = err as FastifyError
          return { code, message, data: req.session.toJSON() }
        }
      })
    }
  })
}

test('a value that matches the schema is stored and read back', async (t) => {
  const { app } = await schemaApp(t)
  const write = await app.inject({ method: 'POST', url: '/write', payload: { user: { id: 7, roles: ['admin'] }, theme: 'dark' } })
  t.equal(write.statusCode, 200)
  const read = await app.inject({ url: '/read', headers: { cookie: sessionCookie(write) } })
  t.same(read.json().data, { user: { id: 7, roles: ['admin'] }, theme: 'dark' })
})

test('set() with a value failing its key\'s schema throws at once, naming the path; nothing is written', async (t) => {
  const { app, client, prefix } = await schemaApp(t)
  const res = await app.inject({ method: 'POST', url: '/try', payload: { theme: 'pink' } })
  const body = res.json()
  t.equal(body.code, 'FST_REDIS_SESSION_SCHEMA_MISMATCH')
  t.match(body.message, /"theme"/)
  t.equal(body.has, false, 'the key was not set')
  t.equal(body.modified, false, 'the session did not change')
  t.equal(res.headers['set-cookie'], undefined, 'no session was created')
  t.same(await keysUnder(client, prefix), [])
})

test('an uncaught mismatch fails the request with the error code', async (t) => {
  const { app, client, prefix } = await schemaApp(t)
  const res = await app.inject({ method: 'POST', url: '/write', payload: { views: -1 } })
  t.equal(res.statusCode, 500)
  t.equal(res.json().code, 'FST_REDIS_SESSION_SCHEMA_MISMATCH')
  t.match(res.json().message, /"views"/)
  t.same(await keysUnder(client, prefix), [])
})

test('a nested mismatch is reported by its full path', async (t) => {
  const { app } = await schemaApp(t)
  const wrongId = await app.inject({ method: 'POST', url: '/try', payload: { user: { id: 'seven', roles: [] } } })
  t.equal(wrongId.json().code, 'FST_REDIS_SESSION_SCHEMA_MISMATCH')
  t.match(wrongId.json().message, /"user\.id"/)
  const wrongRole = await app.inject({ method: 'POST', url: '/try', payload: { user: { id: 7, roles: ['a', 2] } } })
  t.match(wrongRole.json().message, /"user\.roles\.1"/)
  const missing = await app.inject({ method: 'POST', url: '/try', payload: { user: { id: 7 } } })
  t.match(missing.json().message, /"user\.roles"/, 'a nested object still needs its required properties')
})

test('an existing session is not rewritten when its only change is refused', async (t) => {
  const { app, client, prefix } = await schemaApp(t)
  const first = await app.inject({ method: 'POST', url: '/write', payload: { theme: 'light' } })
  const key = sessionKey(prefix, String(first.json().id))
  const before = await client.get(key)
  const res = await app.inject({ method: 'POST', url: '/try', headers: { cookie: sessionCookie(first) }, payload: { theme: 'pink' } })
  t.equal(res.json().code, 'FST_REDIS_SESSION_SCHEMA_MISMATCH')
  t.same(res.json().data, { theme: 'light' })
  t.equal(await client.get(key), before, 'the stored document is unchanged, version included')
})

test('a refused set() leaves the request\'s other changes to be saved', async (t) => {
  const { app, client, prefix } = await schemaApp(t)
  const res = await app.inject({ method: 'POST', url: '/try', payload: { theme: 'light', views: 1, user: { id: 1.5, roles: [] } } })
  const body = res.json()
  t.equal(body.code, 'FST_REDIS_SESSION_SCHEMA_MISMATCH')
  t.match(body.message, /"user\.id"/)
  t.equal(body.has, false)
  t.same(body.data, { theme: 'light', views: 1 })
  const [key] = await keysUnder(client, prefix)
  t.same(JSON.parse(await client.get(key) ?? 'null').d, { theme: 'light', views: 1 }, 'the route caught the error: its valid changes were saved')
})

test('with additionalProperties: false, an undeclared key is refused', async (t) => {
  const { app, client, prefix } = await schemaApp(t)
  const res = await app.inject({ method: 'POST', url: '/try', payload: { cart: [1, 2] } })
  t.equal(res.json().code, 'FST_REDIS_SESSION_SCHEMA_MISMATCH')
  t.match(res.json().message, /"cart"/)
  t.same(await keysUnder(client, prefix), [])
})

test('without additionalProperties: false, an undeclared key takes any value', async (t) => {
  const { app } = await schemaApp(t, Type.Object({ views: Type.Integer() }))
  const res = await app.inject({ method: 'POST', url: '/try', payload: { cart: [1, 'two', { three: 3 }] } })
  t.same(res.json(), { data: { cart: [1, 'two', { three: 3 }] } })
  const wrong = await app.inject({ method: 'POST', url: '/try', payload: { views: 'many' } })
  t.equal(wrong.json().code, 'FST_REDIS_SESSION_SCHEMA_MISMATCH')
})

test('additionalProperties given as a schema checks every undeclared key', async (t) => {
  const { app } = await schemaApp(t, Type.Object({ theme: Type.String() }, { additionalProperties: Type.Number() }))
  const ok = await app.inject({ method: 'POST', url: '/try', payload: { theme: 'dark', a: 1, b: 2 } })
  t.same(ok.json(), { data: { theme: 'dark', a: 1, b: 2 } })
  const wrong = await app.inject({ method: 'POST', url: '/try', payload: { c: 'three' } })
  t.equal(wrong.json().code, 'FST_REDIS_SESSION_SCHEMA_MISMATCH')
  t.match(wrong.json().message, /"c"/)
})

test('required properties are not required of a session: it fills up over time', async (t) => {
  const { app } = await schemaApp(t)
  const first = await app.inject({ method: 'POST', url: '/write', payload: { theme: 'dark' } })
  t.equal(first.statusCode, 200)
  const read = await app.inject({ url: '/read', headers: { cookie: sessionCookie(first) } })
  t.same(read.json(), { id: first.json().id, isNew: false, data: { theme: 'dark' } }, 'loaded, not discarded')
})

test('deleting a key is always allowed', async (t) => {
  const { app } = await buildApp(t, {
    session: { schema },
    routes: (app) => {
      app.post('/forget', async (req) => {
        req.session.set('theme', undefined)
        req.session.delete('views')
        return req.session.toJSON()
      })
    }
  })
  const first = await app.inject({ method: 'POST', url: '/write', payload: { theme: 'dark', views: 1 } })
  const res = await app.inject({ method: 'POST', url: '/forget', headers: { cookie: sessionCookie(first) } })
  t.same(res.json(), {})
})

test('increment() respects the schema: a result out of range is refused and nothing changes', async (t) => {
  const { app, client, prefix } = await schemaApp(t)
  const first = await app.inject({ method: 'POST', url: '/count?key=views' })
  t.same(first.json(), { n: 1 })
  const cookie = sessionCookie(first)
  t.same((await app.inject({ method: 'POST', url: '/count?key=views', headers: { cookie } })).json(), { n: 2 })
  const third = await app.inject({ method: 'POST', url: '/count?key=views', headers: { cookie } })
  t.equal(third.json().code, 'FST_REDIS_SESSION_SCHEMA_MISMATCH')
  t.match(third.json().message, /"views"/)
  t.same(third.json().data, { views: 2 })
  const [key] = await keysUnder(client, prefix)
  t.same(JSON.parse(await client.get(key) ?? 'null').d, { views: 2 })
})

test('parallel increments whose merge stays within the schema all land in one write', async (t) => {
  const { app, client, prefix } = await schemaApp(t)
  const first = await app.inject({ method: 'POST', url: '/try', payload: { theme: 'dark' } })
  const cookie = sessionCookie(first)
  const responses = await Promise.all([1, 2].map(() => app.inject({ method: 'POST', url: '/count?key=views', headers: { cookie } })))
  t.same(responses.map(res => res.statusCode), [200, 200])
  const [key] = await keysUnder(client, prefix)
  t.same(JSON.parse(await client.get(key) ?? 'null').d, { theme: 'dark', views: 2 })
})

test('parallel increments whose merge leaves the schema: the merge is refused, the stored session stays valid', async (t) => {
  const { app, client, prefix } = await schemaApp(t)
  const first = await app.inject({ method: 'POST', url: '/count?key=views' })
  const cookie = sessionCookie(first)
  // each request sees views 1 → 2 and passes its own check; together they would store 3
  const responses = await Promise.all([1, 2].map(() => app.inject({ method: 'POST', url: '/count?key=views', headers: { cookie } })))
  const codes = responses.map(res => res.statusCode === 200 ? 'ok' : res.json().code).sort()
  t.same(codes, ['FST_REDIS_SESSION_SCHEMA_MISMATCH', 'ok'])
  const [key] = await keysUnder(client, prefix)
  t.same(JSON.parse(await client.get(key) ?? 'null').d, { views: 2 })
  const read = await app.inject({ url: '/read', headers: { cookie } })
  t.same(read.json().data, { views: 2 }, 'the session survives: nothing invalid was stored')
})

test('increment() of a key the schema does not declare as a number is refused', async (t) => {
  const { app, client, prefix } = await schemaApp(t)
  const res = await app.inject({ method: 'POST', url: '/count?key=theme' })
  t.equal(res.json().code, 'FST_REDIS_SESSION_SCHEMA_MISMATCH')
  t.match(res.json().message, /"theme"/)
  const undeclared = await app.inject({ method: 'POST', url: '/count?key=clicks' })
  t.equal(undeclared.json().code, 'FST_REDIS_SESSION_SCHEMA_MISMATCH', 'additionalProperties: false')
  t.same(await keysUnder(client, prefix), [])
})

test('a schema that cannot be compiled fails registration, naming the option', async (t) => {
  const err = await buildApp(t, { session: { schema: Type.Object({ user: Type.Ref('User') }) } }).catch((err: FastifyError) => err)
  t.equal((err as FastifyError).code, 'FST_REDIS_SESSION_INVALID_OPTION')
  t.match((err as FastifyError).message, /"schema"/)
})
