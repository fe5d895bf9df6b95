import { Type, TypeGuard, type TObject, type TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import { errors } from './errors.js'

/** `/user/id` (TypeBox's JSON pointer) as `user.id`, the way option errors name paths. */
export function dotted (pointer: string): string {
  return pointer.slice(1).replaceAll('/', '.')
}

function compile<T extends TSchema> (schema: T): TypeCheck<T> {
  try {
    return TypeCompiler.Compile(schema)
  } catch (err) {
    throw new errors.FST_REDIS_SESSION_INVALID_OPTION('schema', `cannot be compiled: ${(err as Error).message}`)
  }
}

/**
 * A session schema compiled once: one checker per declared key, one for the whole data.
 * A session fills up over time, so every key is optional: `required` is ignored, and what is
 * present must match.
 */
export class SessionSchema {
  readonly #whole: TypeCheck<TObject>
  readonly #keys = new Map<string, TypeCheck<TSchema>>()
  /** How keys the schema does not declare are checked: false refuses them, undefined allows anything. */
  readonly #extra: TypeCheck<TSchema> | false | undefined

  constructor (schema: TObject) {
    this.#whole = compile(Type.Partial(schema))
    for (const [key, property] of Object.entries(schema.properties)) this.#keys.set(key, compile(property))
    const extra = schema.additionalProperties
    this.#extra = extra === false ? false : TypeGuard.IsSchema(extra) ? compile(extra) : undefined
  }

  /** Throws FST_REDIS_SESSION_SCHEMA_MISMATCH, naming the failing path, when `value` may not be stored under `key`. */
  checkValue (key: string, value: unknown): void {
    const check = this.#keys.get(key) ?? this.#extra
    if (check === undefined) return
    if (check === false) throw new errors.FST_REDIS_SESSION_SCHEMA_MISMATCH(key, 'the schema has no such key')
    if (check.Check(value)) return
    // Check() failed, so there is at least one error
    const first = check.Errors(value).First()!
    throw new errors.FST_REDIS_SESSION_SCHEMA_MISMATCH(key + first.path.replaceAll('/', '.'), first.message)
  }

  /** `path: reason` for the first mismatch in stored data (never the data itself), or undefined when it conforms. */
  mismatch (data: Record<string, unknown>): string | undefined {
    const first = this.#firstError(data)
    return first === undefined ? undefined : `${first.path}: ${first.message}`
  }

  /** FST_REDIS_SESSION_SCHEMA_MISMATCH for data that does not conform as a whole, or undefined. */
  mismatchError (data: Record<string, unknown>): Error | undefined {
    const first = this.#firstError(data)
    return first === undefined ? undefined : new errors.FST_REDIS_SESSION_SCHEMA_MISMATCH(first.path, first.message)
  }

  #firstError (data: Record<string, unknown>): { path: string, message: string } | undefined {
    if (this.#whole.Check(data)) return undefined
    const first = this.#whole.Errors(data).First()!
    return { path: dotted(first.path), message: first.message }
  }
}
