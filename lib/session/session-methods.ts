import type { NumericSessionKey, SessionData, SessionKey, SessionOrigin, SessionValue } from '../../types/index.js'
import type { WorkingDocument } from '../model/working-document.js'
import { errors, logBindings } from '../model/errors.js'

/** Node's callback style, as @fastify/session takes it. */
type SessionCallback = (err?: Error) => void

type Data = Partial<SessionData> & Record<string, unknown>

/** Returns the promise, or settles `callback` with it when one is given. */
function settleWith (origin: SessionOrigin, promise: Promise<void>, callback: SessionCallback | undefined): Promise<void> | undefined {
  if (callback === undefined) return promise
  promise.then(() => { callback() }, callback).catch((err: unknown) => {
    origin.log.error({ ...logBindings, err }, 'fastify-session-redis: a session callback threw')
  })
  return undefined
}

/**
 * The part of the session API that works on the request's own copy of the data, and the
 * promise-or-callback forms of the lifecycle calls, which the Redis session implements.
 * Every read first takes in what route code assigned to the session's properties.
 */
export abstract class SessionMethods {
  protected abstract readonly work: WorkingDocument
  protected abstract readonly origin: SessionOrigin

  protected abstract regenerateNow (keep: readonly string[] | undefined): Promise<void>
  protected abstract destroyNow (): Promise<void>
  protected abstract reloadNow (): Promise<void>
  protected abstract saveNow (): Promise<void>

  get<K extends SessionKey> (key: K): SessionValue<K> | undefined {
    this.work.pull()
    return this.work.get(key) as SessionValue<K> | undefined
  }

  has (key: SessionKey): boolean {
    this.work.pull()
    return Object.hasOwn(this.work.doc.d, key)
  }

  set<K extends SessionKey> (key: K, value: SessionValue<K>): void {
    this.work.pull()
    this.work.set(key, value)
  }

  delete (key: SessionKey): void {
    this.work.pull()
    this.work.delete(key)
  }

  clear (): void {
    this.work.pull()
    this.work.clear()
  }

  toJSON (): Data {
    this.work.pull()
    const data = this.work.doc.d
    try {
      return structuredClone(data)
    } catch {
      // a value set with a handed-out object inside holds its proxy, which structuredClone refuses
      return JSON.parse(JSON.stringify(data)) as Data
    }
  }

  data (): Data {
    return this.toJSON()
  }

  increment (key: NumericSessionKey, step = 1): number {
    this.work.pull()
    return this.work.increment(key, step)
  }

  flash (type: string, message: string | readonly string[]): void
  flash (type: string): string[]
  flash (): Record<string, string[]>
  flash (type?: string, message?: string | readonly string[]): void | string[] | Record<string, string[]> {
    return this.work.flash(type, message)
  }

  regenerate (keep?: readonly SessionKey[]): Promise<void>
  regenerate (callback: SessionCallback): undefined
  regenerate (keep: readonly SessionKey[], callback: SessionCallback): undefined
  regenerate (keep?: readonly SessionKey[] | SessionCallback, callback?: SessionCallback): Promise<void> | undefined {
    if (typeof keep === 'function') return settleWith(this.origin, this.regenerateNow(undefined), keep)
    return settleWith(this.origin, this.regenerateNow(keep), callback)
  }

  destroy (): Promise<void>
  destroy (callback: SessionCallback): undefined
  destroy (callback?: SessionCallback): Promise<void> | undefined {
    return settleWith(this.origin, this.destroyNow(), callback)
  }

  reload (): Promise<void>
  reload (callback: SessionCallback): undefined
  reload (callback?: SessionCallback): Promise<void> | undefined {
    return settleWith(this.origin, this.reloadNow(), callback)
  }

  save (): Promise<void>
  save (callback: SessionCallback): undefined
  save (callback?: SessionCallback): Promise<void> | undefined {
    return settleWith(this.origin, this.saveNow(), callback)
  }
}

// Route code assigns data to the session's properties; `session.__proto__ = x` (or Object.assign
// of parsed JSON holding a "__proto__" key) would instead replace the session's prototype, and
// with it every method. Refused like the key itself.
Object.defineProperty(SessionMethods.prototype, '__proto__', {
  get (this: object): unknown { return Object.getPrototypeOf(this) },
  set (): void { throw new errors.FST_REDIS_SESSION_INVALID_KEY('"__proto__"') }
})
