import { test } from 'tap'
import { InPlaceWatch } from '../../lib/model/in-place-watch.js'

// The proxies loaded object values are handed out through: each change made through one, however
// deep, names the data key it belongs to; reading changes nothing; identity holds.

type Data = Record<string, unknown>

test('reading through a proxy marks nothing; a nested object is watched for the same key', async (t) => {
  const watch = new InPlaceWatch()
  const cart = { items: [{ sku: 'A', qty: 1 }], total: 9 }
  const shown = watch.watch('cart', cart) as typeof cart
  t.equal(shown.total, 9)
  t.equal(shown.items[0].sku, 'A')
  t.equal(shown.items.length, 1)
  t.same(JSON.parse(JSON.stringify(shown)), cart, 'serializes as the object it shows')
  t.equal(watch.changed, undefined, 'nothing was changed')
  t.equal(shown.items, shown.items, 'one proxy per object')
  t.equal(watch.watch('cart', cart), shown, 'the same proxy when asked again')
  t.equal(watch.shown(cart), shown)
  t.equal(watch.shown({}), undefined, 'an object not watched')
  t.equal(watch.unwrap(shown), cart)
  t.equal(watch.unwrap(shown.items), cart.items)
  t.equal(watch.unwrap(cart), cart, 'an object not a proxy is itself')
  t.equal(watch.unwrap(3), 3)
  t.equal(watch.unwrap(null), null)
  t.ok(Array.isArray(shown.items), 'an array stays an array')
})

test('set, delete and defineProperty, at any depth, mark the data key with its value', async (t) => {
  const cases: Array<[string, (shown: Data & { items: Data[] }) => void]> = [
    ['push', shown => { shown.items.push({ sku: 'B' }) }],
    ['a nested field', shown => { shown.items[0].qty = 2 }],
    ['a nested delete', shown => { delete shown.items[0].sku }],
    ['defineProperty', shown => { Object.defineProperty(shown, 'x', { value: 1, enumerable: true, configurable: true, writable: true }) }],
    ['reverse in place', shown => { shown.items.reverse() }],
    ['length set to 0', shown => { shown.items.length = 0 }]
  ]
  for (const [name, change] of cases) {
    const watch = new InPlaceWatch()
    const cart = { items: [{ sku: 'A', qty: 1 }, { sku: 'C', qty: 3 }] }
    change(watch.watch('cart', cart) as Data & { items: Data[] })
    t.same([...(watch.changed ?? [])], [['cart', cart]], name)
  }
  const watch = new InPlaceWatch()
  const user = { name: 'Ann' }
  const cart = { items: [] as unknown[] }
  ;(watch.watch('user', user) as Data).name = 'Bo'
  ;(watch.watch('cart', cart) as Data).total = 0
  t.same([...(watch.changed ?? [])], [['user', user], ['cart', cart]], 'each key once, in order')
  watch.forget()
  t.equal(watch.changed, undefined, 'forgotten after a save')
})

test('a proxy assigned into a watched object is stored as the object behind it', async (t) => {
  const watch = new InPlaceWatch()
  const a = { list: [1] }
  const b: Data = {}
  const shownA = watch.watch('a', a) as typeof a
  const shownB = watch.watch('b', b) as Data
  shownB.list = shownA.list
  t.equal(b.list, a.list, 'by set')
  Object.defineProperty(shownB, 'again', { value: shownA.list, enumerable: true, configurable: true, writable: true })
  t.equal(b.again, a.list, 'by defineProperty')
  Object.defineProperty(shownB, 'getter', { get: () => 1, enumerable: true, configurable: true })
  t.equal(shownB.getter, 1, 'an accessor is defined as given')
})

test('an object frozen through its proxy can still be read, nested values as they are', async (t) => {
  const watch = new InPlaceWatch()
  const cart = { items: [{ sku: 'A' }], meta: { n: 1 } }
  const shown = watch.watch('cart', cart) as typeof cart
  Object.freeze(shown)
  t.ok(Object.isFrozen(cart), 'the object itself is frozen')
  t.equal(shown.items, cart.items, 'a frozen property is returned as it is')
  t.equal(shown.items[0].sku, 'A')
  t.equal(Object.getPrototypeOf(shown), Object.prototype)
  // an inherited object-valued property has no own descriptor
  t.equal(Reflect.get(shown, '__proto__'), watch.watch('cart', Object.prototype), 'an inherited object is watched too')
  t.same([...(watch.changed ?? []).keys()], ['cart'], 'freezing counts as a change')
  const loose = { a: { b: 1 } }
  const shownLoose = watch.watch('loose', loose) as typeof loose
  Object.defineProperty(shownLoose, 'fixed', { value: { c: 1 }, enumerable: true, configurable: false, writable: true })
  t.not((shownLoose as Data).fixed, (loose as Data).fixed, 'a writable property of a pinned object is still watched')
  t.equal(shownLoose.a.b, 1)
})
