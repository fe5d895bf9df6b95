import { errors } from './errors.js'

/**
 * The stored form of a session: one JSON document per Redis string.
 *
 * `v`, `a`, `t` and `c` always come first and in this order, then `u` when there is one: the Lua
 * scripts read them with anchored patterns instead of decoding the whole document.
 */
export interface SessionDocument {
  /** Version, bumped by every write; the save script compares it. */
  v: number
  /** Absolute deadline, epoch ms. */
  a: number
  /** Idle TTL override in seconds; 0 means the configured `ttl`. */
  t: number
  /** Created at, epoch ms. */
  c: number
  /** The user whose index holds this session (`userKey`); right after `c`, where a script finds it. */
  u?: string
  /** Client ip and user agent at the last save (`trackClient`). */
  ip?: string
  ua?: string
  /** 1: a remembered session, whose cookie persists (`rememberMe`); absent: a browser-session cookie. */
  p?: 1
  /** Flash messages by type. */
  f: Record<string, string[]>
  /** The app's data. */
  d: Record<string, unknown>
}

/** One change a request made, kept so it can be replayed onto a newer stored version. */
export type Operation =
  | { kind: 'set', key: string, value: unknown }
  | { kind: 'delete', key: string }
  | { kind: 'clear' }
  | { kind: 'increment', key: string, step: number }
  | { kind: 'flashAdd', type: string, messages: string[] }
  | { kind: 'flashTake', taken: Record<string, string[]> }
  | { kind: 'ttl', seconds: number }
  | { kind: 'persist', on: boolean }
  | { kind: 'meta', fields: DocumentMeta }

/** Index and client metadata; an undefined field is removed. */
export type DocumentMeta = { [K in 'u' | 'ip' | 'ua']?: string | undefined }
const metaNames = ['u', 'ip', 'ua'] as const

export function newDocument (now: number, absoluteTtl: number): SessionDocument {
  return { v: 0, a: now + absoluteTtl * 1000, t: 0, c: now, f: {}, d: {} }
}

export function serializeDocument (doc: SessionDocument): string {
  const flash = Object.keys(doc.f).length === 0 ? '' : ',"f":' + JSON.stringify(doc.f)
  let meta = ''
  for (const name of metaNames) if (doc[name] !== undefined) meta += `,"${name}":` + JSON.stringify(doc[name])
  // after "u", which the scripts expect right after "c"
  if (doc.p === 1) meta += ',"p":1'
  return '{"v":' + doc.v + ',"a":' + doc.a + ',"t":' + doc.t + ',"c":' + doc.c + meta + flash + ',"d":' + JSON.stringify(doc.d) + '}'
}

/**
 * A copy that operations can be applied to without touching `doc`: they replace top-level fields
 * and data keys and change the flash lists, never anything inside a value.
 */
export function copyDocument (doc: SessionDocument): SessionDocument {
  // the flash bucket holds only strings: nothing in it can make structuredClone throw
  return { ...doc, f: structuredClone(doc.f), d: { ...doc.d } }
}

/** A deep copy of JSON data (plain objects and arrays, strings, numbers, booleans, null). */
export function copyJson<T> (value: T): T {
  if (typeof value !== 'object' || value === null) return value
  if (Array.isArray(value)) return value.map(copyJson) as T
  const copy: Record<string, unknown> = {}
  for (const key in value) copy[key] = copyJson(value[key])
  return copy as T
}

/** Freezes JSON data all the way down. */
export function freezeJson<T> (value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const key in value) freezeJson(value[key])
    Object.freeze(value)
  }
  return value
}

/**
 * The coded error for a document that could not be serialized (`thrown`): a value changed in place
 * after `set()` checked it, into one JSON cannot hold. Names the first key whose value fails.
 */
export function unserializable (doc: SessionDocument, thrown: unknown): Error {
  // what was thrown goes in `cause` only: a message of the app's own getter or toJSON may tell of the data
  const reason = 'it was changed in place after set() into something JSON cannot hold'
  for (const key of Object.keys(doc.d)) {
    try {
      JSON.stringify(doc.d[key])
    } catch {
      return new errors.FST_REDIS_SESSION_INVALID_VALUE(key, reason, { cause: thrown })
    }
  }
  return new errors.FST_REDIS_SESSION_INVALID_VALUE('(data)', reason, { cause: thrown })
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function isWholeNumber (value: unknown, min: number): value is number {
  return Number.isSafeInteger(value) && (value as number) >= min
}

function isFlashBucket (value: unknown): value is Record<string, string[]> {
  if (!isPlainObject(value)) return false
  return Object.values(value).every(list => Array.isArray(list) && list.every(m => typeof m === 'string'))
}

/** True when `__proto__` is an own key anywhere in the value. */
export function hasProtoKey (value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false
  if (Object.hasOwn(value, '__proto__')) return true
  return Object.values(value).some(hasProtoKey)
}

/**
 * Parses a stored document; returns a string saying what is wrong when it cannot be trusted.
 * JSON.parse never assigns a prototype, but a `__proto__` key would turn dangerous the moment
 * anyone copies the data with a spread or Object.assign, so such documents are refused.
 */
export function parseDocument (text: string): SessionDocument | string {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch {
    return 'not JSON'
  }
  if (!isPlainObject(doc)) return 'not an object'
  if (!isWholeNumber(doc.v, 1) || !isWholeNumber(doc.a, 0) || !isWholeNumber(doc.t, 0) || !isWholeNumber(doc.c, 0)) {
    return 'metadata missing or of the wrong type'
  }
  for (const name of metaNames) if (doc[name] !== undefined && typeof doc[name] !== 'string') return 'metadata of the wrong type'
  if (doc.p !== undefined && doc.p !== 1) return 'metadata of the wrong type'
  if (!isPlainObject(doc.d)) return 'data is not an object'
  if (doc.f === undefined) doc.f = {}
  else if (!isFlashBucket(doc.f)) return 'flash messages malformed'
  // the key may be spelt with \u escapes ("\u005f_proto__"): only then can it hide from the plain search
  if ((text.includes('"__proto__"') || text.includes('\\u')) && hasProtoKey(doc)) return 'holds a __proto__ key'
  return doc as unknown as SessionDocument
}

function removeFirst (list: string[], message: string): void {
  const at = list.indexOf(message)
  if (at !== -1) list.splice(at, 1)
}

/** Applies one operation in place; the same code serves the live request and a replay after a conflict. */
export function applyOperation (doc: SessionDocument, op: Operation): void {
  switch (op.kind) {
    case 'set': doc.d[op.key] = op.value; break
    case 'delete': delete doc.d[op.key]; break
    case 'clear': doc.d = {}; break
    case 'increment': {
      const current = Object.hasOwn(doc.d, op.key) ? doc.d[op.key] : undefined
      const next = (typeof current === 'number' ? current : 0) + op.step
      // each request checked its own sum; merged with others' increments it may still overflow
      if (!Number.isFinite(next)) throw new errors.FST_REDIS_SESSION_INVALID_VALUE(op.key, `${next} is not a finite number`)
      doc.d[op.key] = next
      break
    }
    case 'flashAdd': {
      const list = Object.hasOwn(doc.f, op.type) ? doc.f[op.type] : (doc.f[op.type] = [])
      list.push(...op.messages)
      break
    }
    case 'flashTake':
      // remove exactly what this request read: messages added meanwhile by others stay
      for (const type of Object.keys(op.taken)) {
        const list = Object.hasOwn(doc.f, type) ? doc.f[type] : []
        for (const message of op.taken[type]) removeFirst(list, message)
        if (list.length === 0) delete doc.f[type]
      }
      break
    case 'ttl': doc.t = op.seconds; break
    case 'persist':
      if (op.on) doc.p = 1
      else delete doc.p
      break
    case 'meta':
      for (const name of metaNames) {
        if (!Object.hasOwn(op.fields, name)) continue
        if (op.fields[name] === undefined) delete doc[name]
        else doc[name] = op.fields[name]
      }
      break
  }
}

/** Why JSON would not give the value back as it is, or undefined when it would. */
export function unfaithful (value: unknown, path: Set<object> = new Set()): string | undefined {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined
    case 'number':
      return Number.isFinite(value) ? undefined : `${value} is not a finite number`
    case 'object':
      return value === null ? undefined : unfaithfulObject(value, path)
    default:
      return `a ${typeof value} has no JSON form`
  }
}

// deeper values would overflow the stack here or in JSON.stringify: refuse them with a code instead
const MAX_DEPTH = 1000

function unfaithfulObject (value: object, path: Set<object>): string | undefined {
  if (path.has(value)) return 'it is circular'
  if (path.size >= MAX_DEPTH) return `it is nested more than ${MAX_DEPTH} levels deep`
  const proto = Object.getPrototypeOf(value)
  // an Array subclass passes Array.isArray, and its toJSON would decide what is stored
  if (Array.isArray(value) ? proto !== Array.prototype : proto !== Object.prototype && proto !== null) {
    return `${Object.prototype.toString.call(value)} is not a plain object or array`
  }
  path.add(value)
  let reason: string | undefined
  for (const [key, item] of Object.entries(value)) {
    if (key === '__proto__') reason = 'a "__proto__" key is not allowed'
    else if (item === undefined) reason = `"${key}" is undefined`
    else reason = unfaithful(item, path)
    if (reason !== undefined) break
  }
  if (reason === undefined && Array.isArray(value) && Object.keys(value).length !== value.length) reason = 'a sparse array'
  path.delete(value)
  return reason
}
