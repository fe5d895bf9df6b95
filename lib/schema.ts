import type { TObject, TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import { errors } from './errors.js'

/** A session schema compiled once: one checker per declared key, one for the whole data. */
export class SessionSchema {
  readonly #whole: TypeCheck<TObject>
  readonly #keys = new Map<string, TypeCheck<TSchema>>()
  readonly #closed: boolean

  constructor (schema: TObject) {
    this.#whole = TypeCompiler.Compile(schema)
    for (const [key, property] of Object.entries(schema.properties)) {
      this.#keys.set(key, TypeCompiler.Compile(property))
    }
    this.#closed = schema.additionalProperties === false
  }

  /** Throws FST_REDIS_SESSION_SCHEMA_MISMATCH, naming the failing path, when `value` may not be stored under `key`. */
  checkValue (key: string, value: unknown): void {
    const check = this.#keys.get(key)
    if (check === undefined) {
      if (this.#closed) throw new errors.FST_REDIS_SESSION_SCHEMA_MISMATCH(key, 'the schema has no such key')
      return
    }
    if (check.Check(value)) return
    const first = check.Errors(value).First()!
    throw new errors.FST_REDIS_SESSION_SCHEMA_MISMATCH(key + first.path.replaceAll('/', '.'), first.message)
  }

  /** The path of the first mismatch in stored data, or undefined when it conforms. */
  mismatch (data: Record<string, unknown>): string | undefined {
    if (this.#whole.Check(data)) return undefined
    const first = this.#whole.Errors(data).First()!
    return `${first.path}: ${first.message}`
  }
}
