import type { SessionSchema } from './schema.js'
import { applyOperation, unfaithful, type Operation, type SessionDocument } from './document.js'
import { errors } from './errors.js'
import { InPlaceWatch } from './in-place-watch.js'

type View = Record<string, unknown>

/** JSON.stringify's text of `value`; undefined when it throws (what may not be stored is refused by `set`). */
function serialized (value: unknown): string | undefined {
  try {
    return JSON.stringify(value)
  } catch {
    return undefined
  }
}

function isObject (value: unknown): value is object {
  return typeof value === 'object' && value !== null
}

export function checkKey (key: unknown): asserts key is string {
  if (typeof key !== 'string' || key === '' || key === '__proto__') {
    throw new errors.FST_REDIS_SESSION_INVALID_KEY(typeof key === 'string' ? JSON.stringify(key) : `of type ${typeof key}`)
  }
}

function copyFlash (flash: Record<string, string[]>): Record<string, string[]> {
  const copy: Record<string, string[]> = {}
  for (const type of Object.keys(flash)) copy[type] = [...flash[type]]
  return copy
}

/**
 * A request's copy of its session document. Every change is applied to it and recorded as an
 * operation, so that a save meeting a newer stored version can replay them.
 *
 * The data keys are also plain own properties of `view` (the session routes see), as
 * @fastify/session code expects (`request.session.user = x`): `pull` turns what was assigned or
 * deleted there into operations. Keys named like one of `members` stay reachable through get/set only.
 *
 * A stored document's object values are handed out through an `InPlaceWatch`, so that a change made
 * in place (`request.session.cart.push(x)`) is saved as a `set` of its key.
 */
export class WorkingDocument {
  doc: SessionDocument
  ops: Operation[] = []
  readonly #view: View
  readonly #members: ReadonlySet<string>
  readonly #schema: SessionSchema | undefined
  /** Whether the store holds `doc` as it was loaded or last saved: only then can a change in place go unnoticed. */
  #stored = false
  /** Made by `replace` only for a stored document holding an object value: most hold none. */
  #watch: InPlaceWatch | undefined
  /**
   * Object values this request set, then saved, that route code may still hold and change in
   * place: their text when saved. Not watched, as `set(key, x)` leaves `get(key) === x`.
   */
  #given: Map<string, string> | undefined

  constructor (doc: SessionDocument, view: object, members: ReadonlySet<string>, schema: SessionSchema | undefined) {
    this.doc = doc
    this.#view = view as View
    this.#members = members
    this.#schema = schema
  }

  /**
   * Starts over from `doc`, with no operations; the data keys become the view's properties again.
   * `stored`: whether the store holds `doc` as it is (else every value of it is written anyway).
   */
  replace (doc: SessionDocument, stored = false): void {
    this.doc = doc
    this.ops = []
    this.#stored = stored
    this.#watch = undefined
    this.#given = undefined
    const view = this.#view
    for (const key in view) delete view[key]
    const data = doc.d
    for (const key in data) {
      if (this.#members.has(key)) continue
      const value = data[key]
      view[key] = stored && isObject(value) ? (this.#watch ??= new InPlaceWatch()).watch(key, value) : value
    }
  }

  /** Turns what route code assigned to or deleted from the view's properties into operations. */
  pull (): void {
    const view = this.#view
    const data = this.doc.d
    for (const key in view) {
      const shown = view[key]
      if (!Object.hasOwn(data, key) || (data[key] !== shown && data[key] !== this.#watch?.unwrap(shown))) this.set(key, shown)
    }
    for (const key in data) {
      if (!Object.hasOwn(view, key) && !this.#members.has(key)) this.record({ kind: 'delete', key })
    }
  }

  /**
   * After a save: the store holds what was written, and no operation is left to write. `last`: the
   * request's last save, after which nothing route code changes is saved.
   */
  saved (last = false): void {
    this.ops = []
    this.#stored = true
    this.#watch?.forget()
    this.#given = undefined
    if (last) return
    const data = this.doc.d
    for (const key in data) {
      const value = data[key]
      if (isObject(value) && this.#watch?.shown(value) === undefined) (this.#given ??= new Map()).set(key, JSON.stringify(value))
    }
  }

  /**
   * `pull`, then records as a `set` each data key whose object or array was changed in place since
   * it was loaded (or saved): `request.session.cart.push(x)`. The value is checked as `set` checks
   * it. Keys an operation of this request replaced are skipped (they are written with their current
   * value anyway). What was loaded is watched, so this costs nothing when nothing changed; an object
   * this request set and saved costs one JSON.stringify.
   */
  settle (): void {
    this.pull()
    const changed = this.#watch?.changed
    const given = this.#given
    if (!this.#stored || (changed === undefined && given === undefined)) return
    let replaced: Set<string> | undefined
    for (const op of this.ops) {
      // every key left after a clear was set, or incremented, by this request since
      if (op.kind === 'clear') return
      if (op.kind === 'set' || op.kind === 'delete' || op.kind === 'increment') (replaced ??= new Set()).add(op.key)
    }
    const data = this.doc.d
    if (changed !== undefined) {
      for (const [key, top] of changed) if (data[key] === top && replaced?.has(key) !== true) this.set(key, top)
    }
    if (given !== undefined) {
      for (const [key, text] of given) {
        // a key no longer holding an object was replaced or deleted by an operation
        const value = data[key]
        if (replaced?.has(key) !== true && serialized(value) !== text) this.set(key, value)
      }
    }
  }

  get (key: string): unknown {
    const data = this.doc.d
    return Object.hasOwn(data, key) ? this.#shown(data[key]) : undefined
  }

  /** `value` as route code gets it: a watched object through its proxy. */
  #shown (value: unknown): unknown {
    return isObject(value) ? this.#watch?.shown(value) ?? value : value
  }

  set (key: unknown, given: unknown): void {
    checkKey(key)
    // a watched object goes back in as itself, not as its proxy
    const value = this.#watch === undefined ? given : this.#watch.unwrap(given)
    if (value === undefined) return this.delete(key)
    const data = this.doc.d
    // the same primitive again is no change; an object may have been changed in place, so it counts
    if ((typeof value !== 'object' || value === null) && Object.hasOwn(data, key) && data[key] === value) return
    const reason = unfaithful(value)
    if (reason !== undefined) throw new errors.FST_REDIS_SESSION_INVALID_VALUE(key, reason)
    this.#schema?.checkValue(key, value)
    this.record({ kind: 'set', key, value })
  }

  delete (key: string): void {
    if (Object.hasOwn(this.doc.d, key)) this.record({ kind: 'delete', key })
  }

  clear (): void {
    if (Object.keys(this.doc.d).length > 0) this.record({ kind: 'clear' })
  }

  increment (key: unknown, step: number): number {
    checkKey(key)
    // a BigInt would throw a TypeError below, a string would be concatenated
    if (typeof step !== 'number' || !Number.isFinite(step)) {
      throw new errors.FST_REDIS_SESSION_INVALID_VALUE(key, 'increment takes a finite number as its step')
    }
    const current = this.get(key)
    if (current !== undefined && typeof current !== 'number') {
      throw new errors.FST_REDIS_SESSION_INVALID_VALUE(key, 'increment needs a number, and it holds something else')
    }
    const next = (current ?? 0) + step
    if (!Number.isFinite(next)) throw new errors.FST_REDIS_SESSION_INVALID_VALUE(key, `${next} is not a finite number`)
    this.#schema?.checkValue(key, next)
    this.record({ kind: 'increment', key, step })
    return next
  }

  /** Adds messages (`messages` given), or takes and returns those of `type`, or of every type. */
  flash (type: string | undefined, messages: string | readonly string[] | undefined): void | string[] | Record<string, string[]> {
    const bucket = this.doc.f
    // flash(undefined, message) is a bad key, not a call that reads and clears every message
    if (type === undefined && messages === undefined) {
      const all = copyFlash(bucket)
      if (Object.keys(all).length > 0) this.record({ kind: 'flashTake', taken: all })
      return copyFlash(all)
    }
    checkKey(type)
    if (messages === undefined) {
      if (!Object.hasOwn(bucket, type)) return []
      const taken = [...bucket[type]]
      this.record({ kind: 'flashTake', taken: { [type]: taken } })
      return [...taken]
    }
    const list: string[] = typeof messages === 'string' ? [messages] : [...messages]
    if (!list.every(m => typeof m === 'string')) {
      throw new errors.FST_REDIS_SESSION_INVALID_VALUE(type, 'flash messages must be strings')
    }
    this.record({ kind: 'flashAdd', type, messages: list })
  }

  /** The session's own idle timeout (`setTtl`). */
  ttl (seconds: unknown): void {
    if (!Number.isSafeInteger(seconds) || (seconds as number) < 1) {
      throw new errors.FST_REDIS_SESSION_INVALID_VALUE('(ttl)', 'setTtl needs a whole number of seconds, at least 1')
    }
    this.record({ kind: 'ttl', seconds: seconds as number })
  }

  /** Makes the session remembered or not (`rememberMe`); returns whether that changed it. */
  persist (on: unknown): boolean {
    if (typeof on !== 'boolean') throw new errors.FST_REDIS_SESSION_INVALID_VALUE('(rememberMe)', 'rememberMe takes true or false')
    if (on === (this.doc.p === 1)) return false
    this.record({ kind: 'persist', on })
    return true
  }

  record (op: Operation): void {
    const doc = this.doc
    applyOperation(doc, op)
    this.ops.push(op)
    const view = this.#view
    if (op.kind === 'clear') {
      for (const key in view) delete view[key]
    } else if ((op.kind === 'set' || op.kind === 'increment' || op.kind === 'delete') && !this.#members.has(op.key)) {
      if (Object.hasOwn(doc.d, op.key)) view[op.key] = this.#shown(doc.d[op.key])
      else delete view[op.key]
    }
  }
}
