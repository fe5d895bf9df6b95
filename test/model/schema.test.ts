import { test } from 'tap'
import { Type } from '@sinclair/typebox'
import { SessionSchema, dotted } from '../../lib/model/schema.js'

// The session schema, compiled once, without Redis or an app: what set() refuses, and what a
// stored session must match.

const User = Type.Object({ id: Type.Integer(), roles: Type.Array(Type.String()) })

test('dotted: a JSON pointer as option errors name paths', async (t) => {
  t.equal(dotted('/user/id'), 'user.id')
  t.equal(dotted('/cookie'), 'cookie')
  t.equal(dotted(''), '')
})

test('checkValue: a declared key is checked against its own schema, naming the failing path', async (t) => {
  const schema = new SessionSchema(Type.Object({ user: User, theme: Type.String() }, { additionalProperties: false }))
  t.doesNotThrow(() => { schema.checkValue('user', { id: 1, roles: ['admin'] }) })
  t.throws(() => { schema.checkValue('user', { id: 1, roles: [2] }) }, { code: 'FST_REDIS_SESSION_SCHEMA_MISMATCH', message: /"user\.roles\.0"/ })
  t.throws(() => { schema.checkValue('theme', 3) }, { code: 'FST_REDIS_SESSION_SCHEMA_MISMATCH', message: /"theme"/ })
  t.throws(() => { schema.checkValue('other', 1) }, { code: 'FST_REDIS_SESSION_SCHEMA_MISMATCH', message: /"other".*the schema has no such key/ }, 'additionalProperties: false')
})

test('checkValue: keys the schema does not declare', async (t) => {
  const open = new SessionSchema(Type.Object({ theme: Type.String() }))
  t.doesNotThrow(() => { open.checkValue('anything', { at: 'all' }) }, 'allowed when additionalProperties is not given')
  const typed = new SessionSchema(Type.Object({ theme: Type.String() }, { additionalProperties: Type.Number() }))
  t.doesNotThrow(() => { typed.checkValue('count', 3) })
  t.throws(() => { typed.checkValue('count', 'three') }, { code: 'FST_REDIS_SESSION_SCHEMA_MISMATCH', message: /"count"/ }, 'checked by additionalProperties\' schema')
})

test('mismatch: every key optional, what is present must match', async (t) => {
  const schema = new SessionSchema(Type.Object({ user: User, theme: Type.String() }))
  t.equal(schema.mismatch({}), undefined, 'required keys may be missing: a session fills up over time')
  t.equal(schema.mismatch({ theme: 'dark', extra: true }), undefined)
  t.equal(schema.mismatch({ user: { id: 'x', roles: [] } }), 'user.id: Expected integer', 'the path and reason, never the value')
  const err = schema.mismatchError({ theme: 1 })
  t.match(err, { code: 'FST_REDIS_SESSION_SCHEMA_MISMATCH', message: /"theme"/ })
  t.equal(schema.mismatchError({ theme: 'light' }), undefined)
})

test('a schema that cannot be compiled is refused as the schema option', async (t) => {
  t.throws(() => new SessionSchema(Type.Object({ user: Type.Ref('User') })), { code: 'FST_REDIS_SESSION_INVALID_OPTION', message: /"schema" cannot be compiled/ })
})
