import { test } from 'tap'
import { newDocument, serializeDocument, type SessionDocument } from '../../lib/model/document.js'
import { KeyExpiry, idleTtlOf, keyExpiry, lastRefreshOf, liveDocument, rotationDue, secondsLeft } from '../../lib/model/expiry.js'

// The time rules, on a fixed clock: every bound here is exact.

const NOW = 1_700_000_000_000
const TTL = 600

/** A session created at NOW whose absolute deadline is `seconds` on, with its own idle TTL when given. */
function doc (seconds: number, ownTtl = 0): SessionDocument {
  return { ...newDocument(NOW, seconds), v: 1, t: ownTtl }
}

test('secondsLeft: whole seconds to the deadline, rounded up, never below 0', async (t) => {
  t.equal(secondsLeft(doc(100), NOW), 100)
  t.equal(secondsLeft(doc(100), NOW + 1), 100, 'a part of a second counts as one')
  t.equal(secondsLeft(doc(100), NOW + 1000), 99)
  t.equal(secondsLeft(doc(100), NOW + 100_000), 0, 'at the deadline')
  t.equal(secondsLeft(doc(100), NOW + 200_000), 0, 'past it')
})

test('idleTtlOf: the session\'s own TTL when setTtl gave one, else the configured one', async (t) => {
  t.equal(idleTtlOf(doc(3600), TTL), TTL)
  t.equal(idleTtlOf(doc(3600, 30), TTL), 30)
})

test('keyExpiry: an instant (PXAT), one idle TTL from now while that ends first', async (t) => {
  t.same(keyExpiry(doc(3600), TTL, NOW), new KeyExpiry('PXAT', NOW + TTL * 1000, NOW + TTL * 1000))
  t.same(keyExpiry(doc(3600, 30), TTL, NOW + 5), new KeyExpiry('PXAT', NOW + 5 + 30_000, NOW + 5 + 30_000), 'the session\'s own TTL')
})

test('keyExpiry: the deadline itself once that is nearer, or as near', async (t) => {
  const d = doc(3600)
  t.same(keyExpiry(d, TTL, d.a - TTL * 1000 + 1), new KeyExpiry('PXAT', d.a, d.a), 'a millisecond too late for the idle TTL')
  t.same(keyExpiry(d, TTL, d.a - TTL * 1000), new KeyExpiry('PXAT', d.a, d.a), 'the idle TTL ending at the deadline exactly')
  t.same(keyExpiry(d, TTL, d.a - TTL * 1000 - 1), new KeyExpiry('PXAT', d.a - 1, d.a - 1), 'a millisecond earlier: the idle TTL')
  t.equal(keyExpiry(d, TTL, d.a + 1).at, d.a, 'past the deadline: at is the deadline, before now')
})

test('liveDocument: the stored text as a document, unless it cannot be trusted or its deadline has passed', async (t) => {
  const d = doc(100)
  t.same(liveDocument(serializeDocument(d), NOW), d)
  t.same(liveDocument(serializeDocument(d), d.a - 1), d, 'a millisecond before the deadline')
  t.equal(liveDocument(serializeDocument(d), d.a), undefined, 'at the deadline')
  t.equal(liveDocument('{"moved":"x","until":1}', NOW), undefined, 'an alias is no document')
  t.equal(liveDocument('not json', NOW), undefined)
})

test('lastRefreshOf: one idle TTL before the key expires, when the deadline does not decide it', async (t) => {
  const d = doc(3600)
  const expiresAt = NOW + 2_000_000
  t.equal(lastRefreshOf(d, TTL, expiresAt, NOW + 1_500_000), expiresAt - TTL * 1000)
  t.equal(lastRefreshOf(doc(3600, 60), TTL, NOW + 100_000, NOW + 50_000), NOW + 40_000, 'with the session\'s own TTL')
  t.equal(lastRefreshOf(d, TTL, NOW + 1000, NOW + 500), NOW, 'never before the session was created')
  t.equal(lastRefreshOf(d, TTL, NOW + 2_000_000, NOW + 1000), NOW + 1000, 'never after now')
  t.equal(lastRefreshOf(d, TTL, d.a - 1000, NOW), undefined, 'expiring within a second of the deadline: cannot be told')
  t.equal(lastRefreshOf(d, TTL, d.a, NOW), undefined, 'expiring at the deadline: cannot be told')
  t.equal(lastRefreshOf(d, TTL, d.a - 1001, NOW + 3_000_000), d.a - 1001 - TTL * 1000)
})

test('rotationDue: once a session is rotateEvery seconds old, and never without rotateEvery', async (t) => {
  const fresh = { ...doc(3600), c: Date.now() }
  const old = { ...doc(3600), c: Date.now() - 61_000 }
  t.equal(rotationDue({}, old), false, 'no rotateEvery')
  t.equal(rotationDue({ rotateEvery: undefined }, old), false)
  t.equal(rotationDue({ rotateEvery: 60 }, old), true)
  t.equal(rotationDue({ rotateEvery: 60 }, fresh), false)
})
