import { test } from 'tap'
import { randomBytes } from 'node:crypto'
import { sign } from '@fastify/cookie'
import { SECRET, buildApp, keysUnder, sessionCookie, sessionKey } from './helpers/app.js'

const HOUR = 3600_000

/** A valid document's metadata, with a deadline an hour ahead. */
function meta (): string {
  const now = Date.now()
  return `"v":1,"a":${now + HOUR},"t":0,"c":${now}`
}

/** Writes `raw` under a fresh id with a plain SET, as anything with access to Redis could, and returns the signed cookie. */
async function plant (client: import('ioredis').Redis, prefix: string, raw: string): Promise<{ id: string, cookie: string }> {
  const id = randomBytes(32).toString('base64url')
  await client.set(sessionKey(prefix, id), raw, 'EX', 600)
  return { id, cookie: `sid=${encodeURIComponent(sign(id, SECRET))}` }
}

test('a stored value that cannot be trusted is discarded, deleted, and replaced by a fresh session', async (t) => {
  const { app, client, prefix } = await buildApp(t)
  const past = Date.now() - 1000
  const cases: Record<string, string> = {
    'not JSON': 'hello',
    'truncated JSON': `{${meta()},"d":{"a":`,
    'an empty string': '',
    'JSON null': 'null',
    'a JSON array': '[1,2]',
    'a JSON string': '"sess"',
    'a JSON number': '42',
    'metadata missing': '{"d":{"user":"alice"}}',
    'a version that is a string': `{"v":"1","a":${Date.now() + HOUR},"t":0,"c":1,"d":{}}`,
    'version zero': `{"v":0,"a":${Date.now() + HOUR},"t":0,"c":1,"d":{}}`,
    'a negative deadline': '{"v":1,"a":-5,"t":0,"c":1,"d":{}}',
    'a fractional idle TTL': `{"v":1,"a":${Date.now() + HOUR},"t":1.5,"c":1,"d":{}}`,
    'a creation time that is null': `{"v":1,"a":${Date.now() + HOUR},"t":0,"c":null,"d":{}}`,
    'data that is a string': `{${meta()},"d":"alice"}`,
    'data that is an array': `{${meta()},"d":["alice"]}`,
    'data missing': `{${meta()}}`,
    'flash that is an array': `{${meta()},"f":["x"],"d":{}}`,
    'a flash message that is a number': `{${meta()},"f":{"info":[1]},"d":{}}`,
    'a __proto__ key in the data': `{${meta()},"d":{"__proto__":{"polluted":"yes"}}}`,
    'a nested __proto__ key': `{${meta()},"d":{"user":{"__proto__":{"polluted":"yes"}}}}`,
    'a __proto__ key among flash types': `{${meta()},"f":{"__proto__":["yes"]},"d":{}}`,
    'a __proto__ key spelt with an escape': `{${meta()},"d":{"\\u005f_proto__":{"polluted":"yes"}}}`,
    'a nested escaped __proto__ key': `{${meta()},"d":{"a":[{"__pro\\u0074o__":{"polluted":"yes"}}]}}`,
    'an absolute deadline in the past': `{"v":1,"a":${past},"t":0,"c":${past - HOUR},"d":{"user":"alice"}}`,
    'a past deadline, fields in another order': `{"d":{"user":"alice"},"c":${past - HOUR},"t":0,"a":${past},"v":1}`
  }
  for (const [name, raw] of Object.entries(cases)) {
    const { id, cookie } = await plant(client, prefix, raw)
    const res = await app.inject({ method: 'POST', url: '/write', headers: { cookie }, payload: { fresh: true } })
    t.equal(res.statusCode, 200, `${name}: served`)
    const issued = res.json().id as string
    t.not(issued, id, `${name}: a new id`)
    t.equal(await client.exists(sessionKey(prefix, id)), 0, `${name}: the stored value is deleted`)
    const next = await app.inject({ url: '/read', headers: { cookie: sessionCookie(res) } })
    t.same(next.json().data, { fresh: true }, `${name}: nothing of it was kept`)
    t.same(await keysUnder(client, prefix), [sessionKey(prefix, issued)], `${name}: only the new session is stored`)
    await client.del(sessionKey(prefix, issued))
  }
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype is untouched')
})

test('constructor and prototype are ordinary keys: stored, read back, never a prototype', async (t) => {
  const { app, client, prefix } = await buildApp(t, {
    routes (app) {
      app.get('/inspect', async (req) => {
        const data = req.session.toJSON()
        return {
          protoIsObject: Object.getPrototypeOf(data) === Object.prototype,
          ownKeys: Object.keys(data).sort(),
          constructorValue: req.session.get('constructor'),
          prototypeValue: req.session.get('prototype'),
          hasToString: req.session.has('toString'),
          toStringValue: req.session.get('toString') === undefined ? 'undefined' : 'defined',
          protoValue: req.session.get('__proto__') === undefined ? 'undefined' : 'defined',
          polluted: ({} as Record<string, unknown>).polluted ?? null,
          dataPolluted: (data as Record<string, unknown>).polluted ?? null,
          copyPolluted: (Object.assign({}, data) as Record<string, unknown>).polluted ?? null
        }
      })
    }
  })
  const raw = `{${meta()},"d":{"constructor":{"prototype":{"polluted":"yes"}},"prototype":{"polluted":"yes"}}}`
  const { cookie } = await plant(client, prefix, raw)
  const res = await app.inject({ url: '/inspect', headers: { cookie } })
  t.same(res.json(), {
    protoIsObject: true,
    ownKeys: ['constructor', 'prototype'],
    constructorValue: { prototype: { polluted: 'yes' } },
    prototypeValue: { polluted: 'yes' },
    hasToString: false,
    toStringValue: 'undefined',
    protoValue: 'undefined',
    polluted: null,
    dataPolluted: null,
    copyPolluted: null
  })
  t.equal(({} as Record<string, unknown>).polluted, undefined)
  t.equal((Object.prototype as unknown as Record<string, unknown>).polluted, undefined)
})

test('on an empty session, inherited names read as absent', async (t) => {
  const { app } = await buildApp(t, {
    routes (app) {
      app.get('/inherited', async (req) => ['constructor', 'toString', 'hasOwnProperty', '__proto__', 'valueOf']
        .map(key => [req.session.has(key), req.session.get(key) === undefined]))
    }
  })
  const res = await app.inject({ url: '/inherited' })
  t.same(res.json(), Array(5).fill([false, true]))
})
