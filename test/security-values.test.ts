import { test } from 'tap'
import { buildApp, keysUnder, sessionCookie, setCookies, sessionKey } from './helpers/app.js'

class Point {
  x = 1
}

/** Values JSON would not give back as they were; built on the server, since most cannot travel in a request. */
const unfaithful: Record<string, () => unknown> = {
  BigInt: () => 1n,
  'a function': () => () => 1,
  'a symbol': () => Symbol('s'),
  'a circular object': () => {
    const o: Record<string, unknown> = {}
    o.self = o
    return o
  },
  'a circular array': () => {
    const a: unknown[] = []
    a.push({ a })
    return a
  },
  NaN: () => NaN,
  Infinity: () => Infinity,
  '-Infinity': () => -Infinity,
  'NaN inside an array': () => [1, NaN],
  'a Date': () => new Date(),
  'a Map': () => new Map([['a', 1]]),
  'a Set': () => new Set([1]),
  'a class instance': () => new Point(),
  'a RegExp': () => /x/,
  'a Buffer': () => Buffer.from('x'),
  'a boxed string': () => Object('x'),
  'undefined inside an object': () => ({ a: { b: undefined } }),
  'undefined inside an array': () => [1, undefined],
  'a sparse array': () => {
    const a = [1, 2, 3]
    delete a[1]
    return a
  },
  'a __proto__ key inside': () => JSON.parse('{"user":{"__proto__":{"polluted":"yes"}}}'),
  'a BigInt deep inside': () => ({ a: [{ b: [10n] }] }),
  'a value nested 100,000 levels deep': () => {
    let value: unknown = 1
    for (let i = 0; i < 100_000; i++) value = [value]
    return value
  }
}

const badKeys: Record<string, unknown> = {
  'an empty key': '',
  'a __proto__ key': '__proto__',
  'a numeric key': 5,
  'an undefined key': undefined
}

/** An app with routes that try bad writes, and one stored session `{ keep: 'me' }`. */
async function setup (t: Parameters<typeof buildApp>[0], maxBytes?: number) {
  const built = await buildApp(t, {
    session: maxBytes === undefined ? {} : { maxBytes },
    routes (app) {
      app.post('/bad-value', async (req) => {
        const { kind } = req.body as { kind: string }
        req.session.set('value', unfaithful[kind]())
        return 'stored'
      })
      app.post('/bad-key', async (req) => {
        const { kind, via } = req.body as { kind: string, via: string }
        const key = badKeys[kind] as string
        if (via === 'set') req.session.set(key, 1)
        else if (via === 'increment') req.session.increment(key)
        else req.session.flash(key, 'message')
        return 'stored'
      })
    }
  })
  const created = await built.app.inject({ method: 'POST', url: '/write', payload: { keep: 'me' } })
  const cookie = sessionCookie(created)
  const key = sessionKey(built.prefix, (created.json().id as string))
  return { ...built, cookie, key, stored: await built.client.get(key) }
}

test('set() refuses values JSON cannot hold faithfully: an error code, nothing written', async (t) => {
  const { app, client, prefix, cookie, key, stored } = await setup(t)
  for (const kind of Object.keys(unfaithful)) {
    const res = await app.inject({ method: 'POST', url: '/bad-value', headers: { cookie }, payload: { kind } })
    t.equal(res.statusCode, 500, `${kind}: status`)
    t.equal(res.json().code, 'FST_REDIS_SESSION_INVALID_VALUE', `${kind}: code`)
    t.same(setCookies(res), [], `${kind}: no cookie`)
    t.equal(await client.get(key), stored, `${kind}: the stored session is unchanged`)

    const anonymous = await app.inject({ method: 'POST', url: '/bad-value', payload: { kind } })
    t.equal(anonymous.json().code, 'FST_REDIS_SESSION_INVALID_VALUE', `${kind}: code for a new session`)
    t.same(setCookies(anonymous), [], `${kind}: no cookie for a new session`)
  }
  t.same(await keysUnder(client, prefix), [key], 'no session was created')
  t.equal(({} as Record<string, unknown>).polluted, undefined)
})

test('set(), increment() and flash() refuse empty, non-string and __proto__ keys', async (t) => {
  const { app, client, prefix, cookie, key, stored } = await setup(t)
  for (const kind of Object.keys(badKeys)) {
    for (const via of ['set', 'increment', 'flash']) {
      const res = await app.inject({ method: 'POST', url: '/bad-key', headers: { cookie }, payload: { kind, via } })
      t.equal(res.json().code, 'FST_REDIS_SESSION_INVALID_KEY', `${via}(${kind}): code`)
      t.equal(res.statusCode, 500, `${via}(${kind}): status`)
    }
  }
  t.equal(await client.get(key), stored, 'the stored session is unchanged')
  t.same(await keysUnder(client, prefix), [key])
})

test('a session larger than maxBytes (64 KiB by default) is refused with 507; the stored one stays as it was', async (t) => {
  const { app, client, prefix, cookie, key, stored } = await setup(t)
  const big = 'x'.repeat(65536)
  const res = await app.inject({ method: 'POST', url: '/write', headers: { cookie }, payload: { big } })
  t.equal(res.statusCode, 507)
  t.equal(res.json().code, 'FST_REDIS_SESSION_TOO_LARGE')
  t.same(setCookies(res), [])
  t.equal(await client.get(key), stored, 'the stored session is unchanged')

  const fresh = await app.inject({ method: 'POST', url: '/write', payload: { big } })
  t.equal(fresh.json().code, 'FST_REDIS_SESSION_TOO_LARGE')
  t.same(setCookies(fresh), [], 'no cookie for a session that was never stored')
  t.same(await keysUnder(client, prefix), [key], 'and nothing stored for it')

  // just under the limit is fine
  const overhead = Buffer.byteLength(stored!) + ',"fits":""'.length
  const fits = await app.inject({ method: 'POST', url: '/write', headers: { cookie }, payload: { fits: 'y'.repeat(65536 - overhead) } })
  t.equal(fits.statusCode, 200)
  t.equal(Buffer.byteLength((await client.get(key))!), 65536, 'exactly maxBytes is allowed')
})

test('a small maxBytes counts bytes, not characters', async (t) => {
  const { app, client, cookie, key, stored } = await setup(t, 256)
  const room = 256 - Buffer.byteLength(stored!) - ',"s":""'.length
  const ascii = await app.inject({ method: 'POST', url: '/write', headers: { cookie }, payload: { s: 'a'.repeat(room) } })
  t.equal(ascii.statusCode, 200, 'fits')
  const after = await client.get(key)
  const twoByte = await app.inject({ method: 'POST', url: '/write', headers: { cookie }, payload: { s: 'é'.repeat(room) } })
  t.equal(twoByte.statusCode, 507, 'the same number of two-byte characters does not')
  t.equal(twoByte.json().code, 'FST_REDIS_SESSION_TOO_LARGE')
  t.equal(await client.get(key), after, 'the stored session is the last one that fitted')
})

test('one oversized change among parallel ones fails alone; the others are saved', async (t) => {
  const { app, client, cookie, key } = await setup(t, 1024)
  const writes = Array.from({ length: 6 }, (_, i) => i === 2
    ? { big: 'z'.repeat(2000) }
    : { [`k${i}`]: i })
  const results = await Promise.all(writes.map(payload => app.inject({ method: 'POST', url: '/write', headers: { cookie }, payload })))
  t.same(results.map(r => r.statusCode), [200, 200, 507, 200, 200, 200])
  const data = JSON.parse((await client.get(key))!).d
  t.same(data, { keep: 'me', k0: 0, k1: 1, k3: 3, k4: 4, k5: 5 })
})

test('a value nested 1,000 levels deep is still stored; one level more is refused', async (t) => {
  const nest = (depth: number): unknown => {
    let value: unknown = 'core'
    for (let i = 0; i < depth; i++) value = [value]
    return value
  }
  const { app } = await buildApp(t, {
    routes (app) {
      app.post('/deep', async (req) => {
        req.session.set('deep', nest((req.body as { depth: number }).depth))
        return 'stored'
      })
    }
  })
  const stored = await app.inject({ method: 'POST', url: '/deep', payload: { depth: 1000 } })
  t.equal(stored.statusCode, 200)
  const read = await app.inject({ url: '/read', headers: { cookie: sessionCookie(stored) } })
  t.equal(JSON.stringify(read.json().data.deep), JSON.stringify(nest(1000)))
  const refused = await app.inject({ method: 'POST', url: '/deep', payload: { depth: 1001 } })
  t.equal(refused.json().code, 'FST_REDIS_SESSION_INVALID_VALUE')
})
