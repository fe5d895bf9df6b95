// app.sessions and the per-user index options, seen through the package's own name.
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { expectAssignable, expectError, expectType } from 'tsd'
import redisSession, { type CreateSessionOptions, type CreatedSession, type RedisSessionOptions, type SessionData, type SessionInfo, type SessionManager, type SessionStats } from 'fastify-session-redis'

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
expectType<number | undefined>(info.lastSeen)
expectType<string | undefined>(info.userAgent)

expectAssignable<RedisSessionOptions>({ secret: 'x'.repeat(32), userKey: 'userId', trackClient: false })
expectError<RedisSessionOptions>({ secret: 'x'.repeat(32), userKey: 1 })
expectError<RedisSessionOptions>({ secret: 'x'.repeat(32), trackClient: 'yes' })

// app.sessions.create: README "Sessions in tests"
const created = await app.sessions.create({ user: { id: 1 } }, { rememberMe: true })
expectType<CreatedSession>(created)
expectType<string>(created.id)
expectType<string>(created.cookie)
expectType<Record<string, string>>(created.headers)
const { id, headers } = await app.sessions.create({ user: { id: 1 } }, { rememberMe: true })
const res = await app.inject({ url: '/me', headers }) // or { headers: { cookie } }
expectType<number>(res.statusCode)
await app.sessions.destroy(id)
expectType<Promise<CreatedSession>>(app.sessions.create())
expectType<Promise<CreatedSession>>(app.sessions.create({}, { ttl: 60 }))
expectAssignable<CreateSessionOptions>({ ttl: 60, rememberMe: false })
expectError(app.sessions.create({}, { ttl: '60' }))
expectError(app.sessions.create({}, { rememberMe: 1 }))
expectError(app.sessions.create({}, { persistent: true }))
expectError(app.sessions.create('user'))
