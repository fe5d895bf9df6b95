import createError from '@fastify/error'

/** Every log line of the plugin carries these bindings (never session data, a secret or a full id). */
export const logBindings = { plugin: 'fastify-session-redis' }

/** Every error the plugin raises, keyed by its stable code. */
export const errors = {
  FST_REDIS_SESSION_INVALID_OPTION: createError<'FST_REDIS_SESSION_INVALID_OPTION', 500, [string, string]>(
    'FST_REDIS_SESSION_INVALID_OPTION', 'fastify-session-redis: option "%s" %s', 500),
  FST_REDIS_SESSION_STORE_UNAVAILABLE: createError<'FST_REDIS_SESSION_STORE_UNAVAILABLE', 503, [string, { cause: unknown }?]>(
    'FST_REDIS_SESSION_STORE_UNAVAILABLE', 'Session store unavailable: %s', 503),
  FST_REDIS_SESSION_CONFLICT: createError<'FST_REDIS_SESSION_CONFLICT', 503, [number, number]>(
    'FST_REDIS_SESSION_CONFLICT', 'Session changed concurrently; other writers won every one of %d attempts in %d ms, and the timeout has passed; nothing was saved', 503),
  FST_REDIS_SESSION_GONE: createError<'FST_REDIS_SESSION_GONE', 409, []>(
    'FST_REDIS_SESSION_GONE', 'Session ended (destroyed, regenerated or expired) before this request could save its changes', 409),
  FST_REDIS_SESSION_INVALID_KEY: createError<'FST_REDIS_SESSION_INVALID_KEY', 500, [string]>(
    'FST_REDIS_SESSION_INVALID_KEY', 'Invalid session key %s', 500),
  FST_REDIS_SESSION_INVALID_VALUE: createError<'FST_REDIS_SESSION_INVALID_VALUE', 500, [string, string, { cause: unknown }?]>(
    'FST_REDIS_SESSION_INVALID_VALUE', 'Session key "%s" cannot hold this value: %s', 500),
  FST_REDIS_SESSION_SCHEMA_MISMATCH: createError<'FST_REDIS_SESSION_SCHEMA_MISMATCH', 500, [string, string]>(
    'FST_REDIS_SESSION_SCHEMA_MISMATCH', 'Session value at "%s" does not match the schema: %s', 500),
  FST_REDIS_SESSION_TOO_LARGE: createError<'FST_REDIS_SESSION_TOO_LARGE', 507, [number, number]>(
    'FST_REDIS_SESSION_TOO_LARGE', 'Session is %d bytes, more than maxBytes (%d); it was not saved', 507),
  FST_REDIS_SESSION_NONE: createError<'FST_REDIS_SESSION_NONE', 500, [string]>(
    'FST_REDIS_SESSION_NONE', 'This request has no session: %s', 500),
  FST_REDIS_SESSION_BAD_ID: createError<'FST_REDIS_SESSION_BAD_ID', 500, []>(
    'FST_REDIS_SESSION_BAD_ID', 'idGenerator returned an unusable id: not 22-128 characters of [A-Za-z0-9_-], or one already in use', 500),
  FST_REDIS_SESSION_CACHE_CLUSTER: createError<'FST_REDIS_SESSION_CACHE_CLUSTER', 500, []>(
    'FST_REDIS_SESSION_CACHE_CLUSTER', 'fastify-session-redis: option "cache" cannot be used with a Redis Cluster client: invalidations are tracked on one connection to one node, and a cluster\'s keys live on several', 500)
}
