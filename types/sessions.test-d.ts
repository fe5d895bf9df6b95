// app.sessions and the per-user index options, seen through the package's own name.
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { expectAssignable, expectError, expectType } from 'tsd'
import redisSession, { channels, type CreateSessionOptions, type CreatedSession, type SessionConflictEvent, type SessionCreateEvent, type SessionDestroyEvent, type SessionExpiredEvent, type SessionLoadEvent, type SessionRegenerateEvent, type SessionSaveEvent, type DetachedSession, type RedisSessionOptions, type Session, type SessionData, type SessionInfo, type SessionManager, type SessionOrigin, type SessionStats } from 'fastify-session-redis'

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

// app.sessions.create: docs/managing-sessions.md "Sessions in tests"
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

// sessions outside a request
const detached = await app.sessions.fromHeaders({ cookie: 'sid=x', 'user-agent': 'a' })
expectType<DetachedSession>(detached)
expectAssignable<Session>(detached)
expectType<string | undefined>(detached.setCookieHeader())
expectType<Promise<void>>(detached.save())
expectType<Promise<DetachedSession>>(app.sessions.fromHeaders({}, { ip: '::1', protocol: 'https', log: app.log }))
expectError(app.sessions.fromHeaders({}, { protocol: 'ws' }))
expectError(app.sessions.fromHeaders({}, { ip: 1 }))
expectError(app.sessions.fromHeaders('sid=x'))
// a request is an origin
app.get('/', async (request) => { expectAssignable<SessionOrigin>(request) })

// lifecycle events on diagnostics_channel
expectType<'fastify-session-redis:load'>(channels.load)
expectType<'fastify-session-redis:expired'>(channels.expired)
const load = {} as SessionLoadEvent
expectType<'found' | 'missing' | 'expired' | 'invalid'>(load.outcome)
expectType<number>(load.durationMs)
const save = {} as SessionSaveEvent
expectType<string | undefined>(save.code)
expectType<'session' | 'admin'>(({} as SessionDestroyEvent).by)
expectType<string | undefined>(({} as SessionRegenerateEvent).previousHint)
expectType<'missing' | 'deadline'>(({} as SessionExpiredEvent).reason)
expectType<number>(({} as SessionConflictEvent).attempt)
expectType<number>(({} as SessionCreateEvent).bytes)
