import diagnostics from 'node:diagnostics_channel'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { expectAssignable, expectError, expectType } from 'tsd'
import redisSession, { channels, errors, type SessionCacheEvent, type SessionCacheOptions, type SessionStats } from 'fastify-session-redis'

const app = Fastify()
const client = new Redis()
const secret = 'a-secret-of-at-least-32-characters!'

// the local cache: `true` for the defaults, or any of its settings
app.register(redisSession, { client, secret, cache: true })
app.register(redisSession, { client, secret, cache: { max: 10_000, lease: 500, refreshEvery: 8640 } })
app.register(redisSession, { client, secret, cache: {} })
expectAssignable<SessionCacheOptions>({ lease: 250 })
expectError(app.register(redisSession, { client, secret, cache: { lease: '500ms' } }))
expectError(app.register(redisSession, { client, secret, cache: { size: 10 } }))
expectError(app.register(redisSession, { client, secret, cache: 'on' }))

// its counters
declare const stats: SessionStats
expectType<number>(stats.cacheHits)
expectType<number>(stats.cacheMisses)
expectType<number>(stats.cacheInvalidations)
expectType<number>(stats.cacheLeaseExpiries)

// its channel and event
expectType<'fastify-session-redis:cache'>(channels.cache)
diagnostics.subscribe(channels.cache, (message) => {
  const { state, reason, entries } = message as SessionCacheEvent
  expectType<'stopped' | 'answering' | 'flushed'>(state)
  expectType<'lease' | 'connection' | 'ready' | 'flush' | 'proven'>(reason)
  expectType<number>(entries)
})

// its error
expectType<'FST_REDIS_SESSION_CACHE_CLUSTER'>(new errors.FST_REDIS_SESSION_CACHE_CLUSTER().code)
