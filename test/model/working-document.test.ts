import { test } from 'tap'
import { Type } from '@sinclair/typebox'
import { newDocument, type SessionDocument } from '../../lib/model/document.js'
import { WorkingDocument, checkKey } from '../../lib/model/working-document.js'
import { SessionSchema } from '../../lib/model/schema.js'

// A request's copy of its document, without Redis: each change applied and recorded once, the
// view (the session's own properties) kept in step, bad input refused with a code.

const MEMBERS: ReadonlySet<string> = new Set(['get', 'set'])

function stored (d: Record<string, unknown> = {}, f: Record<string, string[]> = {}): SessionDocument {
  return { ...newDocument(1_700_000_000_000, 3600), v: 4, d, f }
}

function working (doc = stored(), schema?: SessionSchema): { work: WorkingDocument, view: Record<string, unknown> } {
  const view: Record<string, unknown> = {}
  const work = new WorkingDocument(doc, view, MEMBERS, schema)
  work.replace(doc)
  return { work, view }
}

test('replace: the data keys become the view\'s properties, except those named like a member', async (t) => {
  const { work, view } = working(stored({ a: 1, get: 'hidden' }))
  t.same(view, { a: 1 })
  t.same(work.ops, [])
  work.replace(stored({ b: 2 }))
  t.same(view, { b: 2 }, 'the old keys are gone')
})

test('set, delete, increment and clear are applied, recorded and mirrored', async (t) => {
  const { work, view } = working(stored({ a: 1, n: 1 }))
  work.set('b', [1])
  work.set('a', 1)
  t.equal(work.ops.length, 1, 'the same primitive again is no change')
  work.set('b', work.get('b'))
  t.equal(work.ops.length, 2, 'an object may have changed in place: it counts')
  t.equal(work.increment('n', 2), 3)
  work.delete('a')
  work.delete('missing')
  t.same(work.doc.d, { n: 3, b: [1] })
  t.same(view, { n: 3, b: [1] })
  t.same(work.ops.map(op => op.kind), ['set', 'set', 'increment', 'delete'], 'deleting a missing key records nothing')
  work.set('n', undefined)
  t.notOk(Object.hasOwn(view, 'n'), 'setting undefined deletes')
  work.clear()
  t.same([work.doc.d, view], [{}, {}])
  work.clear()
  t.equal(work.ops.at(-1)?.kind, 'clear')
  t.equal(work.ops.filter(op => op.kind === 'clear').length, 1, 'clearing nothing records nothing')
  t.equal(work.doc.v, 4, 'the version is the writer\'s to bump')
})

test('pull: what route code assigned to or deleted from the view becomes operations', async (t) => {
  const { work, view } = working(stored({ a: 1, get: 'member-named' }))
  view.b = 'new'
  view.a = 2
  work.pull()
  t.same(work.doc.d, { a: 2, b: 'new', get: 'member-named' })
  delete view.a
  work.pull()
  t.same(work.doc.d, { b: 'new', get: 'member-named' }, 'a key named like a member is not deleted for being absent from the view')
  t.same(work.ops.map(op => op.kind), ['set', 'set', 'delete'])
  work.pull()
  t.equal(work.ops.length, 3, 'nothing more to pull')
})

test('bad keys and values get a coded error and change nothing', async (t) => {
  const { work } = working(stored({ text: 'x', big: Number.MAX_VALUE }))
  for (const key of ['', '__proto__', 1, undefined]) {
    t.throws(() => { work.set(key, 1) }, { code: 'FST_REDIS_SESSION_INVALID_KEY' }, `key ${String(key)}`)
  }
  t.throws(() => { checkKey(Symbol('k')) }, { code: 'FST_REDIS_SESSION_INVALID_KEY', message: /of type symbol/ })
  t.throws(() => { work.set('v', NaN) }, { code: 'FST_REDIS_SESSION_INVALID_VALUE', message: /"v".*NaN/ })
  t.throws(() => { work.increment('text', 1) }, { code: 'FST_REDIS_SESSION_INVALID_VALUE', message: /holds something else/ })
  t.throws(() => { work.increment('big', Number.MAX_VALUE) }, { code: 'FST_REDIS_SESSION_INVALID_VALUE', message: /Infinity is not a finite number/ })
  t.throws(() => { work.ttl(0) }, { code: 'FST_REDIS_SESSION_INVALID_VALUE', message: /\(ttl\)/ })
  t.throws(() => { work.ttl(1.5) }, { code: 'FST_REDIS_SESSION_INVALID_VALUE' })
  t.throws(() => { work.persist('yes') }, { code: 'FST_REDIS_SESSION_INVALID_VALUE', message: /\(rememberMe\)/ })
  t.throws(() => { work.flash('info', [1] as unknown as string[]) }, { code: 'FST_REDIS_SESSION_INVALID_VALUE', message: /strings/ })
  t.throws(() => { work.flash(undefined, 'm') }, { code: 'FST_REDIS_SESSION_INVALID_KEY' }, 'a message with no type')
  t.same(work.ops, [])
  t.same(work.doc.d, { text: 'x', big: Number.MAX_VALUE })
})

test('the schema checks each value set and each incremented total', async (t) => {
  const schema = new SessionSchema(Type.Object({ n: Type.Integer({ maximum: 3 }) }, { additionalProperties: false }))
  const { work } = working(stored({ n: 3 }), schema)
  t.throws(() => { work.set('other', 1) }, { code: 'FST_REDIS_SESSION_SCHEMA_MISMATCH' })
  t.throws(() => { work.increment('n', 1) }, { code: 'FST_REDIS_SESSION_SCHEMA_MISMATCH' })
  t.equal(work.increment('n', -1), 2)
  t.same(work.ops, [{ kind: 'increment', key: 'n', step: -1 }])
})

test('flash: add, take one type, take all; each take records what it read', async (t) => {
  const { work } = working(stored({}, { info: ['a'] }))
  t.equal(work.flash('info', 'b'), undefined)
  work.flash('warn', ['w1', 'w2'])
  t.same(work.flash('none', undefined), [], 'a type with no messages: nothing recorded')
  t.same(work.flash('info', undefined), ['a', 'b'])
  t.same(work.flash(undefined, undefined), { warn: ['w1', 'w2'] })
  t.same(work.flash(undefined, undefined), {}, 'all taken')
  t.same(work.doc.f, {})
  t.same(work.ops.map(op => op.kind), ['flashAdd', 'flashAdd', 'flashTake', 'flashTake'])
})

test('ttl and persist', async (t) => {
  const { work } = working()
  work.ttl(90)
  t.equal(work.doc.t, 90)
  t.equal(work.persist(false), false, 'not remembered already: no change')
  t.equal(work.persist(true), true)
  t.equal(work.doc.p, 1)
  t.equal(work.persist(true), false)
  t.same(work.ops, [{ kind: 'ttl', seconds: 90 }, { kind: 'persist', on: true }])
})

test('settle: a loaded object changed through its proxy, or a saved one through its own reference, becomes a set', async (t) => {
  const { work, view } = working()
  const loaded = stored({ cart: ['a'], user: { name: 'Ann' }, n: 1 })
  work.replace(loaded, true)
  const cart = work.get('cart') as string[]
  t.equal(view.cart, cart, 'the property and get() show the same proxy')
  t.not(cart, loaded.d.cart, 'a proxy, not the loaded array')
  work.settle()
  t.same(work.ops, [], 'read only: nothing recorded')
  cart.push('b')
  ;(view.user as Record<string, unknown>).name = 'Bo'
  work.settle()
  t.same(work.ops.map(op => op.kind === 'set' && [op.key, op.value]), [['cart', ['a', 'b']], ['user', { name: 'Bo' }]], 'each changed key set once, with the object itself')
  t.equal((work.ops[0] as { value: unknown }).value, loaded.d.cart, 'stored as the array behind the proxy')
  work.settle()
  t.equal(work.ops.length, 2, 'settled twice: no more')

  // saved with the request going on: what it set and holds is compared with its JSON as saved
  const prefs = { tags: ['x'] }
  const other = { k: 1 }
  const gone = { g: 1 }
  work.set('prefs', prefs)
  work.set('other', other)
  work.set('gone', gone)
  work.saved()
  t.equal(work.get('prefs'), prefs, 'an object this request set is not wrapped')
  work.settle()
  t.same(work.ops, [], 'nothing changed since the save')
  prefs.tags.push('y')
  work.set('other', { k: 2 })
  work.delete('gone')
  cart.push('c')
  work.settle()
  t.same(work.ops.map(op => op.kind === 'delete' ? ['delete', op.key] : op.kind === 'set' && [op.key, op.value]), [
    ['other', { k: 2 }], ['delete', 'gone'], ['cart', ['a', 'b', 'c']], ['prefs', { tags: ['x', 'y'] }]
  ], 'the changed ones, each once; a replaced or deleted key by its own operation only')

  work.saved(true)
  prefs.tags.push('z')
  work.settle()
  t.same(work.ops, [], 'after the last save: nothing is compared')
})
