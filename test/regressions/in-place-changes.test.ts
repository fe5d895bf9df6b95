import { test } from 'tap'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Redis } from 'ioredis'
import { Type } from '@sinclair/typebox'
import { Gate } from '../helpers/gate.js'
import { buildApp, sessionCookie, sessionKey, setCookies, uniquePrefix } from '../helpers/app.js'

// An object loaded with a session and changed in place (`request.session.cart.push(x)`, as
// @fastify/session code does) showed in that response and was then lost: only what went through
// `set`, an assignment, `delete` or the like was saved.

type Data = Record<string, unknown>

/** The session's data keys as plain properties, as @fastify/session code reads them. */
const props = (req: FastifyRequest): Data => req.session as unknown as Data
const body = (req: FastifyRequest): Data => req.body as Data

/**
 * POST /push-get and /push-prop push `item` onto `cart` (read by `get`, or as a property), POST
 * /rename sets `user.name`, POST /forget deletes `user.email`, each in place; all answer the data.
 * With a `gate`, each waits at it after its change. POST /set sets `theme`.
 */
function inPlaceRoutes (app: FastifyInstance, gate?: Gate): void {
  const held = async (req: FastifyRequest): Promise<Data> => {
    await gate?.hold()
    return req.session.toJSON()
  }
  app.post('/push-get', async (req) => {
    (req.session.get('cart') as unknown[]).push(body(req).item)
    return await held(req)
  })
  app.post('/push-prop', async (req) => {
    (props(req).cart as unknown[]).push(body(req).item)
    return await held(req)
  })
  app.post('/rename', async (req) => {
    (req.session.get('user') as Data).name = body(req).name
    return await held(req)
  })
  app.post('/forget', async (req) => {
    delete (props(req).user as Data).email
    return await held(req)
  })
  app.post('/set', async (req) => {
    req.session.set('theme', body(req).theme)
    return await held(req)
  })
}

/** The stored document of the session with this id. */
async function stored (client: Redis, prefix: string, id: string): Promise<{ v: number, d: Data }> {
  return JSON.parse(await client.get(sessionKey(prefix, id)) as string)
}

const START = { cart: ['a'], user: { name: 'Ann', email: 'ann@example.com' }, n: 1 }

test('an array pushed onto in place, read by get() or as a property, is saved', async (t) => {
  const { app, client, prefix } = await buildApp(t, { routes: inPlaceRoutes })
  const created = await app.inject({ method: 'POST', url: '/write', payload: START })
  const cookie = sessionCookie(created)
  const id = created.json().id

  const byGet = await app.inject({ method: 'POST', url: '/push-get', headers: { cookie }, payload: { item: 'b' } })
  t.same(byGet.json().cart, ['a', 'b'], 'the response sees the push')
  const afterGet = await app.inject({ url: '/read', headers: { cookie } })
  t.same(afterGet.json().data.cart, ['a', 'b'], 'pushed through get(): saved, seen by the next request')

  await app.inject({ method: 'POST', url: '/push-prop', headers: { cookie }, payload: { item: 'c' } })
  const afterProp = await app.inject({ url: '/read', headers: { cookie } })
  t.same(afterProp.json().data.cart, ['a', 'b', 'c'], 'pushed through the property: saved, seen by the next request')
  t.same((await stored(client, prefix, id)).d, { ...START, cart: ['a', 'b', 'c'] }, 'Redis holds it, the other keys as they were')
})

test('a nested field changed, or a nested key deleted, in place is saved', async (t) => {
  const { app, client, prefix } = await buildApp(t, { routes: inPlaceRoutes })
  const created = await app.inject({ method: 'POST', url: '/write', payload: START })
  const cookie = sessionCookie(created)
  const id = created.json().id

  await app.inject({ method: 'POST', url: '/rename', headers: { cookie }, payload: { name: 'Bo' } })
  const renamed = await app.inject({ url: '/read', headers: { cookie } })
  t.same(renamed.json().data.user, { name: 'Bo', email: 'ann@example.com' }, 'the changed field is saved')

  await app.inject({ method: 'POST', url: '/forget', headers: { cookie } })
  const forgotten = await app.inject({ url: '/read', headers: { cookie } })
  t.same(forgotten.json().data.user, { name: 'Bo' }, 'the deleted key stays deleted')
  t.same((await stored(client, prefix, id)).d.user, { name: 'Bo' }, 'Redis holds it')
})

test('isModified() tells of a change made in place, as @fastify/session does', async (t) => {
  const { app } = await buildApp(t, {
    routes (app) {
      app.post('/check', async (req) => {
        const before = req.session.isModified()
        ;(req.session.get('cart') as unknown[]).push('b')
        return { before, after: req.session.isModified() }
      })
    }
  })
  const cookie = sessionCookie(await app.inject({ method: 'POST', url: '/write', payload: START }))
  const res = await app.inject({ method: 'POST', url: '/check', headers: { cookie } })
  t.same(res.json(), { before: false, after: true })
  const read = await app.inject({ url: '/read', headers: { cookie } })
  t.same(read.json().data.cart, ['a', 'b'], 'and it is saved')
})

/**
 * Runs a request that pushes onto `cart` in place and one that sets `theme` at the same time, both
 * on the session `cookie` names, on `first` and `second` (one app, or two sharing the Redis):
 * both have loaded before either saves.
 */
async function inParallel (first: FastifyInstance, second: FastifyInstance, gate: Gate, cookie: string): Promise<number[]> {
  const pending = [
    first.inject({ method: 'POST', url: '/push-get', headers: { cookie }, payload: { item: 'b' } }),
    second.inject({ method: 'POST', url: '/set', headers: { cookie }, payload: { theme: 'dark' } })
  ]
  await gate.reached(2)
  gate.open()
  return (await Promise.all(pending)).map(res => res.statusCode)
}

test('a change in place and a set of another key, in parallel on one app: both land', async (t) => {
  const gate = new Gate()
  const { app, client, prefix } = await buildApp(t, { routes: (app) => { inPlaceRoutes(app, gate) } })
  const created = await app.inject({ method: 'POST', url: '/write', payload: START })
  t.same(await inParallel(app, app, gate, sessionCookie(created)), [200, 200])
  const { d } = await stored(client, prefix, created.json().id)
  t.same(d, { ...START, cart: ['a', 'b'], theme: 'dark' }, 'the pushed item and the other key are both stored')
})

test('a change in place and a set of another key, in parallel on two apps sharing the Redis: both land', async (t) => {
  const gate = new Gate()
  const prefix = uniquePrefix()
  const one = await buildApp(t, { session: { prefix }, routes: (app) => { inPlaceRoutes(app, gate) } })
  const two = await buildApp(t, { session: { prefix }, routes: (app) => { inPlaceRoutes(app, gate) } })
  const created = await one.app.inject({ method: 'POST', url: '/write', payload: START })
  const conflicts = (): number => one.app.sessions.stats().conflicts + two.app.sessions.stats().conflicts
  t.same(await inParallel(one.app, two.app, gate, sessionCookie(created)), [200, 200])
  t.equal(conflicts(), 1, 'the second save met the first one\'s version and replayed its change')
  const { d } = await stored(one.client, prefix, created.json().id)
  t.same(d, { ...START, cart: ['a', 'b'], theme: 'dark' }, 'the pushed item and the other key are both stored')
})

test('two parallel changes in place of the same key: the key is replaced whole, the last save wins', async (t) => {
  const gate = new Gate()
  const { app, client, prefix } = await buildApp(t, { routes: (app) => { inPlaceRoutes(app, gate) } })
  const created = await app.inject({ method: 'POST', url: '/write', payload: START })
  const cookie = sessionCookie(created)
  const pending = ['x', 'y'].map(item => app.inject({ method: 'POST', url: '/push-get', headers: { cookie }, payload: { item } }))
  await gate.reached(2)
  gate.open()
  t.same((await Promise.all(pending)).map(res => res.statusCode), [200, 200])
  const { d } = await stored(client, prefix, created.json().id)
  t.ok([['a', 'x'], ['a', 'y']].some(cart => JSON.stringify(cart) === JSON.stringify(d.cart)), `one cart whole, never a mix (${JSON.stringify(d.cart)})`)
  t.same({ ...d, cart: START.cart }, START, 'the other keys are untouched')
})

test('a request that only reads a session holding objects writes nothing', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    routes (app) {
      app.get('/look', async (req) => {
        const cart = req.session.get('cart') as unknown[]
        const user = props(req).user as Data
        return { items: cart.length, name: user.name, modified: req.session.isModified(), all: req.session.toJSON() }
      })
    }
  })
  const created = await app.inject({ method: 'POST', url: '/write', payload: { ...START, deep: { a: [{ b: null, c: 'é\u2028"' }], 2: 1, z: 1e21 } } })
  const cookie = sessionCookie(created)
  const key = sessionKey(prefix, created.json().id)
  const before = await client.get(key)
  for (let i = 0; i < 3; i++) {
    const res = await app.inject({ url: '/look', headers: { cookie } })
    t.same(res.json().modified, false, `read ${i}: not modified`)
  }
  t.equal(app.sessions.stats().saved, 1, 'no save after the one that created it')
  t.equal(await client.get(key), before, 'the stored text is as it was, version and all')

  // the same data stored with other spacing (by another tool): compared key by key, still no change
  const spaced = before!.replace('"d":', '"d" : ').replace('"cart":', '"cart" :')
  await client.set(key, spaced, 'KEEPTTL')
  const res = await app.inject({ url: '/look', headers: { cookie } })
  t.same(res.json().modified, false, 'spaced: not modified')
  t.equal(await client.get(key), spaced, 'spaced: not rewritten')
  t.equal(app.sessions.stats().saved, 1, 'spaced: no save')

  const plain = await app.inject({ method: 'POST', url: '/write', payload: { n: 1, s: 'x' } })
  const plainKey = sessionKey(prefix, plain.json().id)
  const plainBefore = await client.get(plainKey)
  const read = await app.inject({ url: '/read', headers: { cookie: sessionCookie(plain) } })
  t.same(read.json().data, { n: 1, s: 'x' })
  t.equal(await client.get(plainKey), plainBefore, 'a session of strings and numbers: not rewritten either')
  t.equal(app.sessions.stats().saved, 2, 'only its creation saved')
})

test('a change in place into a value that may not be stored: a coded 500, the stored session unchanged', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    routes (app) {
      app.post('/spoil', async (req) => {
        const { kind } = body(req)
        const cart = req.session.get('cart') as unknown[]
        if (kind === 'bigint') cart.push(10n)
        else if (kind === 'date') cart.push(new Date(0))
        else cart.push(undefined)
        return 'ok'
      })
    }
  })
  const created = await app.inject({ method: 'POST', url: '/write', payload: START })
  const cookie = sessionCookie(created)
  const key = sessionKey(prefix, created.json().id)
  const before = await client.get(key)
  for (const kind of ['bigint', 'date', 'undefined']) {
    const res = await app.inject({ method: 'POST', url: '/spoil', headers: { cookie }, payload: { kind } })
    t.equal(res.statusCode, 500, `${kind}: answered 500`)
    t.equal(res.json().code, 'FST_REDIS_SESSION_INVALID_VALUE', `${kind}: the code`)
    t.match(res.json().message, /"cart"/, `${kind}: the key is named`)
    t.equal(await client.get(key), before, `${kind}: the stored session is as it was`)
  }
})

test('a change in place that breaks the schema: a coded 500, the stored session unchanged', async (t) => {
  const schema = Type.Object({ cart: Type.Array(Type.String()), n: Type.Integer() })
  const { app, client, prefix } = await buildApp(t, {
    session: { schema },
    routes (app) {
      app.post('/spoil', async (req) => {
        (req.session.get('cart') as unknown[]).push(7)
        return 'ok'
      })
    }
  })
  const created = await app.inject({ method: 'POST', url: '/write', payload: { cart: ['a'], n: 1 } })
  const cookie = sessionCookie(created)
  const key = sessionKey(prefix, created.json().id)
  const before = await client.get(key)
  const res = await app.inject({ method: 'POST', url: '/spoil', headers: { cookie } })
  t.equal(res.statusCode, 500)
  t.equal(res.json().code, 'FST_REDIS_SESSION_SCHEMA_MISMATCH')
  t.equal(await client.get(key), before, 'the stored session is as it was')
})

test('changes in place next to set, clear, save, regenerate and reload', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    routes (app) {
      app.post('/push-and-change', async (req) => {
        (req.session.get('cart') as unknown[]).push('b')
        req.session.increment('n')
        req.session.delete('user')
        req.session.set('extra', { x: 1 })
        return 'ok'
      })
      app.post('/clear-and-set', async (req) => {
        const cart = req.session.get('cart') as unknown[]
        req.session.clear()
        req.session.set('cart', cart)
        cart.push('c')
        return 'ok'
      })
      app.post('/push-save-push', async (req) => {
        const cart = req.session.get('cart') as unknown[]
        cart.push('d')
        await req.session.save()
        cart.push('e')
        return 'ok'
      })
      app.post('/push-regenerate', async (req) => {
        (req.session.get('cart') as unknown[]).push('f')
        await req.session.regenerate(['cart'])
        ;(req.session.get('cart') as unknown[]).push('g')
        return { id: req.session.id }
      })
      app.post('/push-reload-push', async (req) => {
        (req.session.get('cart') as unknown[]).push('lost')
        await req.session.reload()
        ;(req.session.get('cart') as unknown[]).push('h')
        return 'ok'
      })
    }
  })
  const created = await app.inject({ method: 'POST', url: '/write', payload: START })
  const cookie = sessionCookie(created)
  const id = created.json().id
  const data = async (cookie: string): Promise<Data> => (await app.inject({ url: '/read', headers: { cookie } })).json().data

  await app.inject({ method: 'POST', url: '/push-and-change', headers: { cookie } })
  t.same(await data(cookie), { cart: ['a', 'b'], n: 2, extra: { x: 1 } }, 'a push next to an increment, a delete and a set of other keys: all saved')

  await app.inject({ method: 'POST', url: '/clear-and-set', headers: { cookie } })
  t.same(await data(cookie), { cart: ['a', 'b', 'c'] }, 'cleared, then set again and changed after the set: saved')

  const saved = await app.inject({ method: 'POST', url: '/push-save-push', headers: { cookie } })
  t.equal(saved.statusCode, 200)
  t.same((await stored(client, prefix, id)).d.cart, ['a', 'b', 'c', 'd', 'e'], 'pushed before and after save(): both saved')

  const reloaded = await app.inject({ method: 'POST', url: '/push-reload-push', headers: { cookie } })
  t.equal(reloaded.statusCode, 200)
  t.same(await data(cookie), { cart: ['a', 'b', 'c', 'd', 'e', 'h'] }, 'reload() drops the change before it; the one after is saved')

  const regenerated = await app.inject({ method: 'POST', url: '/push-regenerate', headers: { cookie } })
  const next = sessionCookie(regenerated)
  t.not(regenerated.json().id, id, 'a new id')
  t.same(await data(next), { cart: ['a', 'b', 'c', 'd', 'e', 'h', 'f', 'g'] }, 'regenerate(keep) keeps a change made in place before it, and saves one after it')
})

test('a change in place on a session rotated by its load, or while the request ran, is saved under the new id', async (t) => {
  const gate = new Gate()
  const { app, client, prefix } = await buildApp(t, {
    session: { rotateEvery: 60, rotateGrace: 20 },
    routes: (app) => {
      inPlaceRoutes(app)
      app.post('/push-held', async (req) => {
        await gate.hold()
        ;(req.session.get('cart') as unknown[]).push(body(req).item)
        return 'ok'
      })
    }
  })
  const created = await app.inject({ method: 'POST', url: '/write', payload: START })
  const oldCookie = sessionCookie(created)
  const age = async (id: string): Promise<void> => {
    const doc = JSON.parse(await client.get(sessionKey(prefix, id)) as string)
    await client.set(sessionKey(prefix, id), JSON.stringify({ ...doc, c: doc.c - 61_000 }), 'KEEPTTL')
  }

  await age(created.json().id)
  const rotated = await app.inject({ method: 'POST', url: '/push-get', headers: { cookie: oldCookie }, payload: { item: 'b' } })
  const newCookie = sessionCookie(rotated)
  t.not(newCookie, oldCookie, 'the load rotated the id')
  const read = await app.inject({ url: '/read', headers: { cookie: newCookie } })
  t.same(read.json().data.cart, ['a', 'b'], 'the push is saved under the new id')

  // held after its load; meanwhile another request rotates the id: the save follows to the successor
  const newId = read.json().id
  await age(newId)
  const slow = app.inject({ method: 'POST', url: '/push-held', headers: { cookie: newCookie }, payload: { item: 'c' } })
  await gate.reached(1)
  const again = await app.inject({ url: '/read', headers: { cookie: newCookie } })
  const latest = sessionCookie(again)
  t.not(latest, newCookie, 'rotated again while the slow request was held')
  gate.open()
  const res = await slow
  t.equal(res.statusCode, 200)
  t.ok(setCookies(res).length > 0, 'the slow request is told the new id')
  const final = await app.inject({ url: '/read', headers: { cookie: latest } })
  t.same(final.json().data.cart, ['a', 'b', 'c'], 'its push reached the successor')
})

test('an object this request set and saved, then changed in place through its own reference, is saved', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    routes (app) {
      app.post('/set-save-change', async (req) => {
        const prefs = { theme: 'light', tags: ['a'] }
        req.session.set('prefs', prefs)
        await req.session.save()
        const { change } = body(req)
        if (change === true) prefs.tags.push('b')
        // a BigInt: JSON.stringify throws, so the change cannot be stored
        if (change === 'spoil') (prefs as Data).big = 1n
        return { same: req.session.get('prefs') === prefs }
      })
    }
  })
  const created = await app.inject({ method: 'POST', url: '/write', payload: START })
  const cookie = sessionCookie(created)
  const id = created.json().id
  const before = (await stored(client, prefix, id)).v

  const unchanged = await app.inject({ method: 'POST', url: '/set-save-change', headers: { cookie }, payload: { change: false } })
  t.same(unchanged.json(), { same: true }, 'get() gives back the very object set')
  t.equal((await stored(client, prefix, id)).v, before + 1, 'not changed after save(): written once')

  await app.inject({ method: 'POST', url: '/set-save-change', headers: { cookie }, payload: { change: true } })
  const after = await stored(client, prefix, id)
  t.same(after.d.prefs, { theme: 'light', tags: ['a', 'b'] }, 'the change after save() is saved')
  t.equal(after.v, before + 3, 'by a second write')

  const spoiled = await app.inject({ method: 'POST', url: '/set-save-change', headers: { cookie }, payload: { change: 'spoil' } })
  t.equal(spoiled.statusCode, 500)
  t.equal(spoiled.json().code, 'FST_REDIS_SESSION_INVALID_VALUE', 'changed into what JSON cannot hold: a coded error')
  const last = await stored(client, prefix, id)
  t.same([last.v, last.d.prefs], [before + 4, { theme: 'light', tags: ['a'] }], 'what save() wrote stays, without the change')
})

test('a loaded object keeps its identity, serializes and copies as plain data, and may be frozen', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    routes (app) {
      app.get('/identity', async (req) => {
        const cart = req.session.get('cart') as unknown[]
        const user = req.session.get('user') as Data
        return {
          get: cart === req.session.get('cart'),
          property: props(req).cart === cart,
          isArray: Array.isArray(cart),
          json: JSON.stringify(user),
          spread: { ...user },
          modified: req.session.isModified()
        }
      })
      app.post('/nest', async (req) => {
        // an object holding handed-out values: data() and toJSON() still give plain copies
        req.session.set('both', { cart: req.session.get('cart'), user: props(req).user })
        const copy = req.session.data()
        ;(copy.cart as unknown[]).push('not saved')
        return { copy, json: req.session.toJSON().both }
      })
      app.post('/freeze', async (req) => {
        const user = Object.freeze(req.session.get('user') as Data)
        return { name: user.name, frozen: Object.isFrozen(user) }
      })
    }
  })
  const created = await app.inject({ method: 'POST', url: '/write', payload: START })
  const cookie = sessionCookie(created)
  const id = created.json().id

  const seen = await app.inject({ url: '/identity', headers: { cookie } })
  t.same(seen.json(), { get: true, property: true, isArray: true, json: JSON.stringify(START.user), spread: START.user, modified: false })

  const nested = await app.inject({ method: 'POST', url: '/nest', headers: { cookie } })
  t.equal(nested.statusCode, 200)
  t.same(nested.json().json, { cart: START.cart, user: START.user }, 'toJSON copies what the handed-out values hold')
  t.same(nested.json().copy.cart, [...START.cart, 'not saved'], 'data() is a copy')
  t.same((await stored(client, prefix, id)).d, { ...START, both: { cart: START.cart, user: START.user } }, 'the copy\'s change is not saved')

  const frozen = await app.inject({ method: 'POST', url: '/freeze', headers: { cookie } })
  t.same(frozen.json(), { name: 'Ann', frozen: true })
  t.same((await stored(client, prefix, id)).d.user, START.user, 'freezing stores the same value')
})
