// app.sessions and the per-user index options, seen through the package's own name.
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { expectAssignable, expectError, expectType } from 'tsd'
import redisSession, { type RedisSessionOptions, type SessionData, type SessionInfo, type SessionManager, type SessionStats } from 'fastify-session-redis'

const app = Fastify()
await app.register(redisSession, { client: new Redis(), secret: 'x'.repeat(32), userKey: 'userId', trackClient: true })
expectType<SessionManager>(app.sessions)

expectType<Promise<(Partial<SessionData> & Record<string, unknown>) | null>>(app.sessions.get('id'))
expectType<Promise<boolean>>(app.sessions.destroy('id'))
expectType<Promise<number>>(app.sessions.count())
expectType<SessionStats>(app.sessions.stats())
expectType<number>(app.sessions.stats().rejectedCookies)
expectType<Promise<SessionInfo[]>>(app.sessions.list(42))
expectType<Promise<SessionInfo[]>>(app.sessions.list('42'))
expectType<Promise<number>>(app.sessions.destroyAll(42, { except: 'current-id' }))
expectType<Promise<number>>(app.sessions.destroyAll('42'))
expectError(app.sessions.list({ id: 42 }))
expectError(app.sessions.destroyAll(42, { except: 1 }))

const info = {} as SessionInfo
expectType<string>(info.idHint)
expectType<string>(app.sessions.idHint('current-id'))
expectError(app.sessions.idHint(42))
expectType<number | undefined>(info.lastSeen)
expectType<string | undefined>(info.userAgent)

expectAssignable<RedisSessionOptions>({ secret: 'x'.repeat(32), userKey: 'userId', trackClient: false })
expectAssignable<RedisSessionOptions>({ secret: 'x'.repeat(32), hashIds: false })
expectError(app.register(redisSession, { client: new Redis(), secret: 'x'.repeat(32), hashIds: 'yes' }))
expectError<RedisSessionOptions>({ secret: 'x'.repeat(32), userKey: 1 })
expectError<RedisSessionOptions>({ secret: 'x'.repeat(32), trackClient: 'yes' })
