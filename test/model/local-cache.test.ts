import { test } from 'tap'
import diagnostics from 'node:diagnostics_channel'
import { HARD_CAP_MS, LocalCache, SLOTS, slotOf, type CacheEntry } from '../../lib/model/local-cache.js'
import { newStats } from '../../lib/model/stats.js'
import { channelNames } from '../../lib/model/channels.js'
import type { SessionCacheEvent } from '../../types/index.js'

// The cache's bookkeeping on its own: which replies it keeps, what it answers, and when.

const NOW = 1_700_000_000_000
const LEASE = 1000

function entry (text: string, fields: Partial<CacheEntry> = {}): CacheEntry {
  return { text, expiresAt: NOW + 60_000, refreshDueAt: Infinity, createdAt: NOW, deadline: NOW + 600_000, cachedAt: NOW, ...fields }
}

/** A cache tracking and proven alive just now. */
function live (max = 10): { cache: LocalCache, events: SessionCacheEvent[], stats: ReturnType<typeof newStats> } {
  const events: SessionCacheEvent[] = []
  const stats = newStats()
  const cache = new LocalCache({ max, lease: LEASE, stats, onChange: (event) => { events.push(event) } })
  cache.trackingOn(cache.epoch)
  cache.proven(cache.epoch, performance.now())
  return { cache, events, stats }
}

test('answers nothing until tracking is on and a PING sent since came back', async (t) => {
  const cache = new LocalCache({ max: 10, lease: LEASE, stats: newStats() })
  t.equal(cache.answering(), false)
  cache.put('a', cache.ticket(), entry('x'))
  t.equal(cache.size, 0, 'a read sent before tracking was on is not kept')
  cache.proven(cache.epoch, performance.now())
  t.equal(cache.answering(), false, 'a PING proves nothing before tracking is on')
  cache.trackingOn(cache.epoch + 1)
  t.equal(cache.tracking, false, 'tracking turned on in another epoch counts not')
  cache.trackingOn(cache.epoch)
  t.equal(cache.answering(), false, 'tracking, but not proven yet')
  cache.proven(cache.epoch - 1, performance.now())
  t.equal(cache.answering(), false, 'a PING of an earlier connection proves nothing')
  cache.proven(cache.epoch, performance.now())
  t.equal(cache.answering(), true)
})

test('keeps a reply only if its key did not change since the read was sent', async (t) => {
  const { cache } = live()
  const ticket = cache.ticket()
  cache.drop('a')
  t.equal(cache.put('a', ticket, entry('old')), false, 'changed meanwhile: not kept')
  t.equal(cache.put('b', ticket, entry('b')), true, 'another key is')
  t.equal(cache.put('a', cache.ticket(), entry('new')), true, 'a read sent after the change is')
  t.equal(cache.lookup('a', NOW)?.text, 'new')
  const before = cache.ticket()
  cache.invalidated('a')
  t.equal(cache.lookup('a', NOW), undefined, 'an invalidation drops the entry')
  t.equal(cache.put('a', before, entry('late')), false, 'and bars a read in flight')
})

test('a flush or a lost connection drops everything and bars every read in flight', async (t) => {
  const { cache, events } = live()
  cache.put('a', cache.ticket(), entry('a'))
  const ticket = cache.ticket()
  cache.flush('flush')
  t.equal(cache.size, 0)
  t.equal(cache.put('b', ticket, entry('b')), false)
  t.same(events.at(-1), { state: 'flushed', reason: 'flush', entries: 1 })
  t.equal(cache.answering(), true, 'a flush does not stop the cache answering')
  cache.put('c', cache.ticket(), entry('c'))
  cache.lost('connection')
  t.equal(cache.answering(), false, 'a lost connection does')
  t.same(events.slice(-2), [{ state: 'stopped', reason: 'connection', entries: 1 }, { state: 'flushed', reason: 'connection', entries: 1 }])
  cache.lost('ready')
  t.same(events.at(-1), { state: 'flushed', reason: 'ready', entries: 0 }, 'lost again while stopped: no second stop')
})

test('the lease: answers while the last proof is younger than the lease; a lapse is counted and told once', async (t) => {
  const { cache, events, stats } = live()
  // whole milliseconds: sums of them are exact
  const proven = Math.ceil(performance.now()) + 1
  cache.proven(cache.epoch, proven)
  t.equal(cache.answering(proven + LEASE - 1), true)
  t.equal(cache.answering(proven + LEASE), false, 'not at the lease')
  t.equal(cache.answering(proven + LEASE + 5), false)
  t.equal(stats.cacheLeaseExpiries, 1, 'counted once')
  t.same(events.filter(e => e.state === 'stopped'), [{ state: 'stopped', reason: 'lease', entries: 0 }])
  cache.proven(cache.epoch, proven - 1)
  t.equal(cache.answering(proven + LEASE), false, 'an older proof does not move it back')
  cache.proven(cache.epoch, performance.now())
  t.same(events.at(-1), { state: 'answering', reason: 'proven', entries: 0 })
})

test('an entry is answered only within its key\'s expiry, its deadline and the hard cap', async (t) => {
  const { cache } = live()
  const put = (id: string, fields: Partial<CacheEntry>): void => { cache.put(id, cache.ticket(), entry(id, fields)) }
  put('idle', { expiresAt: NOW + 10 })
  put('deadline', { deadline: NOW + 10 })
  put('old', { cachedAt: NOW - HARD_CAP_MS + 10 })
  for (const id of ['idle', 'deadline', 'old']) {
    t.equal(cache.lookup(id, NOW + 9)?.text, id, `${id}: answered before`)
    t.equal(cache.lookup(id, NOW + 10), undefined, `${id}: not at the bound`)
    t.equal(cache.lookup(id, NOW), undefined, `${id}: and gone`)
  }
})

test('at most `max` entries, the least recently used going first', async (t) => {
  const { cache } = live(2)
  cache.put('a', cache.ticket(), entry('a'))
  cache.put('b', cache.ticket(), entry('b'))
  cache.lookup('a', NOW)
  cache.put('c', cache.ticket(), entry('c'))
  t.equal(cache.size, 2)
  t.equal(cache.lookup('b', NOW), undefined, 'b, the least recently used, went')
  t.ok(cache.lookup('a', NOW) !== undefined && cache.lookup('c', NOW) !== undefined)
  cache.put('a', cache.ticket(), entry('a2'))
  t.equal(cache.size, 2, 'a key kept again replaces its entry')
  t.equal(cache.lookup('a', NOW)?.text, 'a2')
})

/** An id other than `id` in its slot. */
function sharingSlotWith (id: string): string {
  for (let i = 0; ; i++) if (`k${i}` !== id && slotOf(`k${i}`) === slotOf(id)) return `k${i}`
}

test('the memory of changes is a fixed array of slots: an id sharing the slot of a changed one is barred too, and nothing else', async (t) => {
  const { cache } = live()
  cache.put('kept', cache.ticket(), entry('kept'))
  const ticket = cache.ticket()
  // many times the slots: nothing grows, nothing is forgotten
  for (let i = 0; i < 4 * SLOTS; i++) cache.drop(`k${i}`)
  t.equal(cache.put('other', ticket, entry('other')), false, 'every slot changed since: a read sent before is not kept')
  t.equal(cache.lookup('kept', NOW)?.text, 'kept', 'entries of ids not changed stay')
  const before = cache.ticket()
  cache.drop(sharingSlotWith('other'))
  t.equal(cache.put('other', before, entry('other')), false, 'another id in its slot changed: not kept (a read, never a stale answer)')
  const after = cache.ticket()
  const elsewhere = ['a', 'b', 'c'].find(id => slotOf(id) !== slotOf('other'))!
  cache.drop(elsewhere)
  t.equal(cache.put('other', after, entry('other')), true, 'an id in another slot changed: kept')
  t.ok(slotOf('é ü 😀') >= 0 && slotOf('é ü 😀') < SLOTS && slotOf('') >= 0, 'any text has a slot')
})

test('state changes go to the diagnostics channel while it has subscribers', async (t) => {
  const seen: unknown[] = []
  const listener = (message: unknown): void => { seen.push(message) }
  diagnostics.subscribe(channelNames.cache, listener)
  t.teardown(() => { diagnostics.unsubscribe(channelNames.cache, listener) })
  const cache = new LocalCache({ max: 1, lease: LEASE, stats: newStats() })
  cache.flush('flush')
  t.same(seen, [{ state: 'flushed', reason: 'flush', entries: 0 }])
})

test('an id this process saves is told once to the next load; an id sharing its slot is told in its place', async (t) => {
  const { cache } = live()
  cache.put('a', cache.ticket(), entry('a'))
  cache.saving('a')
  t.equal(cache.lookup('a', NOW), undefined, 'saving drops the entry')
  t.ok(cache.savedSinceLoad('a'), 'told')
  t.notOk(cache.savedSinceLoad('a'), 'once')
  t.notOk(cache.savedSinceLoad('b'), 'an id not saved')
  for (let i = 0; i < 4 * SLOTS; i++) cache.saving(`k${i}`)
  t.ok(cache.savedSinceLoad('k0') && cache.savedSinceLoad(`k${4 * SLOTS - 1}`), 'as many saves as it takes: nothing grows, nothing is forgotten')
  cache.saving('b')
  t.ok(cache.savedSinceLoad(sharingSlotWith('b')), 'an id sharing the slot is told (a rolling read, nothing worse)')
  t.notOk(cache.savedSinceLoad('b'), 'and the saved id no more (a plain read, which the cache may keep)')
})
