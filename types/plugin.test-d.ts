// Every types/**/*.ts file is compiled by tsd as one program, with SessionData left empty: the
// augmented cases live in types/augmented/, one program each (run by npm run test:types).
import Fastify, { type FastifyError, type FastifyPluginAsync, type FastifyRequest } from 'fastify'
import { Redis, Cluster } from 'ioredis'
import { Type, type Static } from '@sinclair/typebox'
import { expectAssignable, expectError, expectNotAssignable, expectType } from 'tsd'
import redisSession, {
  redisSession as named,
  errors,
  Type as PluginType,
  type RedisSessionErrors,
  type RedisSessionOptions,
  type RequestSession,
  type Session,
  type SessionCookieOptions,
  type SessionDataOf,
  type SessionKey,
  type NumericSessionKey
} from 'fastify-session-redis'

const app = Fastify()
const client = new Redis()
const secret = 'a-secret-of-at-least-32-characters!'

// default and named exports are the same plugin
expectType<FastifyPluginAsync<RedisSessionOptions>>(redisSession)
expectType<typeof redisSession>(named)

// options
app.register(redisSession, { client, secret })
app.register(named, { client, secret: [secret, 'an-older-secret-still-verifying-cookies'] })
app.register(redisSession, { client: new Cluster([{ host: '127.0.0.1', port: 7000 }]), secret })
app.register(redisSession, { redis: 'redis://127.0.0.1:6379', secret })
app.register(redisSession, {
  redis: { host: '127.0.0.1', port: 6379, db: 2 },
  secret,
  cookieName: '__Host-sid',
  cookie: { path: '/', secure: true, sameSite: 'strict', httpOnly: true, partitioned: false, maxAge: 3600 },
  prefix: 'app:sess:',
  ttl: 3600,
  absoluteTtl: 86400,
  rolling: false,
  saveUninitialized: true,
  idGenerator: () => 'an-id-of-22-or-more-characters',
  timeout: 500,
  maxBytes: 4096,
  schema: Type.Object({ views: Type.Integer() }),
  rotateEvery: 900,
  rotateGrace: 30
})
expectError(app.register(redisSession, { client, secret, rotateEvery: '15m' }))
expectType<Redis | Cluster | undefined>(({} as RedisSessionOptions).client)
expectAssignable<SessionCookieOptions>({ secure: 'auto' })

expectError(app.register(redisSession, { client }))
// an environment variable may be unset: that is caught at registration, not by the compiler
app.register(redisSession, { client, secret: process.env.SESSION_SECRET })
expectError(app.register(redisSession, {}))
expectError(app.register(redisSession, { client, secret, ttl: '3600' }))
expectError(app.register(redisSession, { client, secret, absoluteTtl: null }))
expectError(app.register(redisSession, { client, secret: 42 }))
expectError(app.register(redisSession, { client: { get () {} }, secret }))
expectError(app.register(redisSession, { client: 'redis://127.0.0.1', secret }))
expectError(app.register(redisSession, { client, secret, cookie: { sameSite: 'sometimes' } }))
expectError(app.register(redisSession, { client, secret, cookie: { secure: 'yes' } }))
expectError(app.register(redisSession, { client, secret, idGenerator: () => 42 }))
// a session of app.sessions.fromHeaders has no FastifyRequest: the generator gets its SessionOrigin
expectAssignable<RedisSessionOptions>({ client, secret, idGenerator: (request) => 'id' in request ? request.id.padEnd(22, '0') : `${request.protocol}-${'x'.repeat(22)}` })
expectAssignable<RedisSessionOptions>({ client, secret, idGenerator: (request) => String(request.headers['x-tenant']).padEnd(22, '0') })
// a generator written for requests only still compiles (it then must not be reached through fromHeaders)
expectAssignable<RedisSessionOptions>({ client, secret, idGenerator: (request: FastifyRequest) => request.id.padEnd(22, '0') })
expectError(app.register(redisSession, { client, secret, schema: { type: 'object', properties: {} } }))
expectError(app.register(redisSession, { client, secret, schema: Type.String() }))
expectError(app.register(redisSession, { client, secret, ttll: 60 }))
expectNotAssignable<RedisSessionOptions>({ client })
expectNotAssignable<RedisSessionOptions>({ client, secret, maxBytes: '64k' })

// request.session, and a route that opts out
app.get('/', async (request) => {
  expectType<RequestSession>(request.session)
  // unaugmented, property-style data is not typed: declare it in SessionData
  expectError(request.session.cart)
  return request.session.id
})
app.get('/health', { config: { session: false } }, async () => 'ok')
// a route that opted out still sees the session's type: reading it throws FST_REDIS_SESSION_NONE, so it is never null
app.get('/opted-out', { config: { session: false } }, async (request) => {
  expectType<RequestSession>(request.session)
  return 'ok'
})
expectType<'FST_REDIS_SESSION_NONE'>(new errors.FST_REDIS_SESSION_NONE('why').code)
app.route({ method: 'GET', url: '/metrics', config: { session: false }, handler: async () => 'ok' })
expectError(app.get('/nope', { config: { session: 'off' } }, async () => 'ok'))

// with SessionData left empty: any string key, unknown values
declare const session: Session
expectType<string>({} as SessionKey)
expectType<string>({} as NumericSessionKey)
expectType<unknown>(session.get('anything'))
session.set('anything', { nested: [1, 'two'] })
session.set('cleared', undefined)
expectType<boolean>(session.has('anything'))
expectType<void>(session.delete('anything'))
expectType<number>(session.increment('n'))
expectType<number>(session.increment('n', -2))
expectAssignable<Record<string, unknown>>(session.toJSON())
expectType<unknown>(session.toJSON().anything)
expectError(session.get(1))
expectError(session.set(Symbol('key'), 1))
expectError(session.increment('n', '2'))

// the rest of the session
expectType<string>(session.id)
expectType<string>(session.sessionId)
expectType<boolean>(session.isNew)
expectType<number>(session.createdAt)
expectType<number>(session.expiresAt)
expectType<boolean>(session.isModified())
expectType<void>(session.flash('info', 'Saved'))
expectType<void>(session.flash('info', ['Saved', 'Twice']))
expectType<string[]>(session.flash('info'))
expectType<Record<string, string[]>>(session.flash())
expectType<Promise<void>>(session.regenerate())
expectType<Promise<void>>(session.destroy())
expectType<Promise<void>>(session.reload())
expectType<Promise<void>>(session.save())
// @fastify/session's forms: keys to keep, and Node-style callbacks
expectType<Promise<void>>(session.regenerate(['passport', 'cart']))
expectType<void>(session.regenerate((err?: Error) => { expectType<Error | undefined>(err) }))
expectType<void>(session.regenerate(['passport'], () => {}))
expectType<void>(session.save(() => {}))
expectType<void>(session.destroy(() => {}))
expectType<void>(session.reload(() => {}))
expectError(session.regenerate('passport'))
expectAssignable<Record<string, unknown>>(session.data())
expectType<void>(session.options({ maxAge: 3600, userInfo: 'from csrf-protection' }))
expectError(session.options({ maxAge: '1h' }))
expectType<void>(session.touch())
expectType<void>(session.setTtl(60))
expectError(session.id = 'chosen-by-the-client')
expectError(session.isNew = false)
expectError(session.flash('info', 42))
expectError(session.setTtl('60'))

// errors: one constructor per code, instances typed by code and status
expectType<RedisSessionErrors>(errors)
const mismatch = new errors.FST_REDIS_SESSION_SCHEMA_MISMATCH('user.id', 'Expected integer')
expectType<'FST_REDIS_SESSION_SCHEMA_MISMATCH'>(mismatch.code)
expectType<500>(mismatch.statusCode)
expectAssignable<FastifyError>(mismatch)
expectAssignable<Error>(new errors.FST_REDIS_SESSION_STORE_UNAVAILABLE('load failed', { cause: new Error('ECONNRESET') }))
expectType<'FST_REDIS_SESSION_GONE'>(errors.FST_REDIS_SESSION_GONE().code)
expectError(new errors.FST_REDIS_SESSION_SCHEMA_MISMATCH(42))
expectAssignable<Error>(new errors.FST_REDIS_SESSION_CONFLICT(12, 2003))
expectError(new errors.FST_REDIS_SESSION_CONFLICT(10))
expectError(errors.FST_REDIS_SESSION_NOT_A_CODE)
function statusOf (err: unknown): number | undefined {
  if (err instanceof errors.FST_REDIS_SESSION_TOO_LARGE) {
    expectType<507>(err.statusCode)
    return err.statusCode
  }
  return undefined
}
expectType<number | undefined>(statusOf(null))

// a TypeBox schema gives the SessionData it describes
const schema = Type.Object({
  user: Type.Object({ id: Type.Integer(), roles: Type.Array(Type.String()) }),
  views: Type.Optional(Type.Integer())
})
type FromSchema = SessionDataOf<typeof schema>
expectType<Static<typeof schema>>({} as FromSchema)
expectAssignable<FromSchema>({ user: { id: 1, roles: ['admin'] } })
expectAssignable<FromSchema>({ user: { id: 1, roles: [] }, views: 2 })
expectNotAssignable<FromSchema>({ user: { id: '1', roles: [] } })
expectNotAssignable<FromSchema>({ user: { id: 1, roles: [] }, views: 'many' })
expectError<SessionDataOf<ReturnType<typeof Type.String>>>({})
app.register(redisSession, { client, secret, schema })

// the plugin exports TypeBox's Type, so an app needs no TypeBox of its own for a schema
expectType<typeof Type>(PluginType)
app.register(redisSession, { client, secret, schema: PluginType.Object({ views: PluginType.Integer() }) })
expectError(app.register(redisSession, { client, secret, schema: PluginType.Array(PluginType.String()) }))
