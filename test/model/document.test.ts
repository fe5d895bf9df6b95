import { test } from 'tap'
import {
  applyOperation, copyJson, freezeJson, hasProtoKey, newDocument, parseDocument, serializeDocument, unfaithful, type Operation, type SessionDocument
} from '../../lib/model/document.js'

// The stored document and its operations, without Redis: what the scripts rely on (field order),
// what a stored text must be to be trusted, and what each operation does to a document.

const NOW = 1_700_000_000_000

function doc (fields: Partial<SessionDocument> = {}): SessionDocument {
  return { ...newDocument(NOW, 3600), v: 1, ...fields }
}

test('a new document: version 0, the deadline absoluteTtl seconds on, no own TTL, no data', async (t) => {
  t.same(newDocument(NOW, 3600), { v: 0, a: NOW + 3_600_000, t: 0, c: NOW, f: {}, d: {} })
})

test('serialized: v, a, t, c first and in this order, then u, the client, p, flash and data', async (t) => {
  const plain = serializeDocument(doc({ d: { n: 1 } }))
  t.equal(plain, `{"v":1,"a":${NOW + 3_600_000},"t":0,"c":${NOW},"d":{"n":1}}`, 'no flash bucket when it is empty')
  const full = serializeDocument(doc({ u: 'ann', ip: '10.0.0.1', ua: 'UA "1"', p: 1, f: { info: ['hi'] }, d: {} }))
  t.equal(full, `{"v":1,"a":${NOW + 3_600_000},"t":0,"c":${NOW},"u":"ann","ip":"10.0.0.1","ua":"UA \\"1\\"","p":1,"f":{"info":["hi"]},"d":{}}`)
  t.match(full, /^\{"v":\d+,"a":\d+,"t":\d+,"c":\d+,"u":/, 'the anchored pattern the destroy script reads')
  t.same(parseDocument(full), JSON.parse(full), 'parsed back as it was')
})

test('a stored text that cannot be trusted is refused, saying why', async (t) => {
  const good = JSON.parse(serializeDocument(doc())) as Record<string, unknown>
  const text = (change: Record<string, unknown>): string => JSON.stringify({ ...good, ...change })
  t.equal(parseDocument('{"v":1,'), 'not JSON')
  t.equal(parseDocument('[1]'), 'not an object')
  t.equal(parseDocument('null'), 'not an object')
  t.equal(parseDocument(text({ v: 0 })), 'metadata missing or of the wrong type', 'a stored version is at least 1')
  t.equal(parseDocument(text({ a: -1 })), 'metadata missing or of the wrong type')
  t.equal(parseDocument(text({ t: 1.5 })), 'metadata missing or of the wrong type')
  t.equal(parseDocument(text({ c: '1' })), 'metadata missing or of the wrong type')
  t.equal(parseDocument(text({ c: undefined })), 'metadata missing or of the wrong type', 'c missing')
  t.equal(parseDocument(text({ u: 7 })), 'metadata of the wrong type')
  t.equal(parseDocument(text({ ua: false })), 'metadata of the wrong type')
  t.equal(parseDocument(text({ p: 2 })), 'metadata of the wrong type')
  t.equal(parseDocument(text({ d: [] })), 'data is not an object')
  t.equal(parseDocument(text({ f: { info: 'not a list' } })), 'flash messages malformed')
  t.equal(parseDocument(text({ f: { info: [1] } })), 'flash messages malformed')
  t.equal(parseDocument(text({ d: { a: {} } }).replace('"a":{}', '"a":{"__proto__":1}')), 'holds a __proto__ key')
  t.equal(parseDocument(text({}).replace('"d":{}', '"d":{"x":{"\\u005f_proto__":{"admin":true}}}')), 'holds a __proto__ key', 'also spelt with escapes')
})

test('a stored text without a flash bucket gets an empty one; escapes that hide nothing are fine', async (t) => {
  const parsed = parseDocument(`{"v":3,"a":${NOW},"t":60,"c":${NOW},"d":{"name":"\\u00e9"}}`)
  t.same(parsed, { v: 3, a: NOW, t: 60, c: NOW, d: { name: 'é' }, f: {} })
})

test('hasProtoKey finds an own __proto__ key at any depth', async (t) => {
  t.equal(hasProtoKey(JSON.parse('{"a":[{"b":{"__proto__":{}}}]}')), true)
  t.equal(hasProtoKey({ a: [{ b: { proto: 1 } }] }), false)
  t.equal(hasProtoKey('__proto__'), false)
  t.equal(hasProtoKey(null), false)
})

test('each operation, applied in place', async (t) => {
  const d = doc({ d: { keep: 1, count: 2, text: 'x' }, f: { info: ['a', 'b', 'a'], warn: ['w'] } })
  applyOperation(d, { kind: 'set', key: 'name', value: { first: 'Ann' } })
  t.same(d.d.name, { first: 'Ann' }, 'set')
  applyOperation(d, { kind: 'delete', key: 'keep' })
  t.notOk(Object.hasOwn(d.d, 'keep'), 'delete')
  applyOperation(d, { kind: 'increment', key: 'count', step: 3 })
  t.equal(d.d.count, 5, 'increment adds the step')
  applyOperation(d, { kind: 'increment', key: 'text', step: 2 })
  t.equal(d.d.text, 2, 'a value that is no number counts from 0')
  applyOperation(d, { kind: 'increment', key: 'fresh', step: -1 })
  t.equal(d.d.fresh, -1, 'so does a missing one')
  applyOperation(d, { kind: 'increment', key: 'toString', step: 1 })
  t.equal(d.d.toString, 1, 'an inherited name is no stored value')
  applyOperation(d, { kind: 'flashAdd', type: 'info', messages: ['c'] })
  applyOperation(d, { kind: 'flashAdd', type: 'new', messages: ['n1', 'n2'] })
  t.same(d.f, { info: ['a', 'b', 'a', 'c'], warn: ['w'], new: ['n1', 'n2'] }, 'flashAdd appends, and starts a type')
  applyOperation(d, { kind: 'flashTake', taken: { info: ['a', 'c'], warn: ['w'], gone: ['x'] } })
  t.same(d.f, { info: ['b', 'a'], new: ['n1', 'n2'] }, 'flashTake removes what was read, once each; an emptied type goes')
  applyOperation(d, { kind: 'ttl', seconds: 90 })
  t.equal(d.t, 90, 'ttl')
  applyOperation(d, { kind: 'persist', on: true })
  t.equal(d.p, 1, 'persist on')
  applyOperation(d, { kind: 'persist', on: false })
  t.notOk(Object.hasOwn(d, 'p'), 'persist off removes the field')
  applyOperation(d, { kind: 'meta', fields: { u: 'ann', ip: '::1' } })
  t.same([d.u, d.ip, d.ua], ['ann', '::1', undefined], 'meta sets the fields it names')
  applyOperation(d, { kind: 'meta', fields: { u: undefined } })
  t.notOk(Object.hasOwn(d, 'u'), 'an undefined field is removed')
  t.equal(d.ip, '::1', 'a field not named stays')
  applyOperation(d, { kind: 'clear' })
  t.same(d.d, {}, 'clear')
  t.same(d.f, { info: ['b', 'a'], new: ['n1', 'n2'] }, 'clear leaves flash messages alone')
})

test('a replay gives the same document as the live request did', async (t) => {
  const ops: Operation[] = [
    { kind: 'set', key: 'a', value: 1 },
    { kind: 'increment', key: 'n', step: 2 },
    { kind: 'flashAdd', type: 'info', messages: ['m'] },
    { kind: 'delete', key: 'a' }
  ]
  const live = doc()
  const replayed = doc()
  for (const op of ops) applyOperation(live, op)
  for (const op of ops) applyOperation(replayed, op)
  t.same(replayed, live)
  t.same(live.d, { n: 2 })
})

test('unfaithful: why JSON would not give a value back as it is', async (t) => {
  for (const value of ['s', true, 0, -1.5, null, [], {}, [1, 'a', { b: [null] }], Object.create(null)]) {
    t.equal(unfaithful(value), undefined, `${JSON.stringify(value)} comes back as it is`)
  }
  t.equal(unfaithful(NaN), 'NaN is not a finite number')
  t.equal(unfaithful(-Infinity), '-Infinity is not a finite number')
  t.equal(unfaithful(undefined), 'a undefined has no JSON form')
  t.equal(unfaithful(() => 1), 'a function has no JSON form')
  t.equal(unfaithful(1n), 'a bigint has no JSON form')
  t.equal(unfaithful(Symbol('s')), 'a symbol has no JSON form')
  t.equal(unfaithful(new Date(0)), '[object Date] is not a plain object or array')
  t.equal(unfaithful({ m: new Map() }), '[object Map] is not a plain object or array')
  t.equal(unfaithful({ a: undefined }), '"a" is undefined')
  t.equal(unfaithful({ deep: [1, { x: NaN }] }), 'NaN is not a finite number', 'found at any depth')
  t.equal(unfaithful(JSON.parse('{"__proto__":{}}')), 'a "__proto__" key is not allowed')
  // eslint-disable-next-line no-sparse-arrays
  t.equal(unfaithful([1, , 3]), 'a sparse array')
  const circular: Record<string, unknown> = {}
  circular.self = { back: circular }
  t.equal(unfaithful(circular), 'it is circular')
  const shared = { x: 1 }
  t.equal(unfaithful({ a: shared, b: shared }), undefined, 'the same object twice is no cycle')
  let deep: unknown = 1
  for (let i = 0; i < 1001; i++) deep = [deep]
  t.equal(unfaithful(deep), 'it is nested more than 1000 levels deep')
  let limit: unknown = 1
  for (let i = 0; i < 1000; i++) limit = [limit]
  t.equal(unfaithful(limit), undefined, '1000 levels are fine')
})

test('copyJson makes a deep copy; freezeJson freezes all the way down', async (t) => {
  const value = { a: [1, { b: 'x' }], c: null, d: { e: true } }
  const copy = copyJson(value)
  t.same(copy, value)
  t.not(copy.a, value.a)
  t.not(copy.a[1], value.a[1])
  t.not(copy.d, value.d)
  t.equal(copyJson(3), 3)
  t.equal(copyJson(null), null)
  const frozen = freezeJson(copy)
  t.equal(frozen, copy, 'frozen in place')
  t.ok(Object.isFrozen(copy) && Object.isFrozen(copy.a) && Object.isFrozen(copy.a[1]) && Object.isFrozen(copy.d))
  t.equal(freezeJson('s'), 's')
  const again = copyJson(frozen)
  t.notOk(Object.isFrozen(again) || Object.isFrozen(again.a), 'a copy of frozen data can be changed')
})
