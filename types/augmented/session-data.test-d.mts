// SessionData augmented the two documented ways: declared members and a TypeBox schema. tsd runs
// this file as a program of its own (npm run test:types), since an augmentation changes
// SessionData for every file compiled with it; the .mts extension keeps it out of the default tsd
// run (types/**/*.ts), which tests the un-augmented fallback.
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { Type, type Static } from '@sinclair/typebox'
import { expectAssignable, expectError, expectNotAssignable, expectType } from 'tsd'
import redisSession, { type CreatedSession, type NumericSessionKey, type RequestSession, type Session, type SessionData, type SessionKey } from 'fastify-session-redis'

const accountSchema = Type.Object({
  account: Type.Object({ plan: Type.Union([Type.Literal('free'), Type.Literal('pro')]), seats: Type.Integer() })
})
type Account = Static<typeof accountSchema>['account']

declare module 'fastify-session-redis' {
  interface SessionData {
    user: { id: number }
    views: number
    theme?: 'light' | 'dark'
    /** a family of keys: `seen:/home`, `seen:/cart`… */
    [key: `seen:${string}`]: number
  }
  // the schema's keys join the declared ones
  interface SessionData extends Static<typeof accountSchema> {}
}

expectType<'user' | 'views' | 'theme' | 'account' | `seen:${string}`>({} as SessionKey)
expectType<'views' | `seen:${string}`>({} as NumericSessionKey)
expectAssignable<SessionData>({ user: { id: 1 }, views: 0, account: { plan: 'free', seats: 1 } })
expectNotAssignable<SessionData>({ user: { id: 1 }, views: '0', account: { plan: 'free', seats: 1 } })

const app = Fastify()
app.register(redisSession, { client: new Redis(), secret: 'a-secret-of-at-least-32-characters!', schema: accountSchema })
app.get('/', async (request) => {
  expectType<RequestSession>(request.session)
  expectType<number | undefined>(request.session.get('views'))
  // property style, as with @fastify/session: typed by SessionData
  expectType<number | undefined>(request.session.views)
  request.session.user = { id: 7 }
  request.session.theme = undefined
  delete request.session.theme
  expectError(request.session.views = 'x')
  expectError(request.session.user = { id: '7' })
  return request.session.increment('views')
})

declare const session: Session

// get: the declared type, or undefined
expectType<number | undefined>(session.get('views'))
expectType<{ id: number } | undefined>(session.get('user'))
expectType<'light' | 'dark' | undefined>(session.get('theme'))
expectType<Account | undefined>(session.get('account'))
expectType<number | undefined>(session.get('seen:/home'))
expectType<number | undefined>(session.toJSON().views)

// set: only the declared type
session.set('views', 1)
session.set('user', { id: 42 })
session.set('theme', 'dark')
session.set('theme', undefined)
session.set('account', { plan: 'pro', seats: 3 })
session.set('seen:/home', 2)
expectError(session.set('views', 'x'))
expectError(session.set('views', undefined))
expectError(session.set('user', { id: '42' }))
expectError(session.set('user', {}))
expectError(session.set('theme', 'blue'))
expectError(session.set('account', { plan: 'enterprise', seats: 3 }))
expectError(session.set('seen:/home', true))

// increment: numeric keys only
expectType<number>(session.increment('views'))
expectType<number>(session.increment('seen:/cart', 2))
expectError(session.increment('user'))
expectError(session.increment('theme'))
expectError(session.increment('account'))

// an undeclared key is an error everywhere
declare const someKey: string
expectError(session.get('nope'))
expectError(session.get(someKey))
expectError(session.set('nope', 1))
expectError(session.has('nope'))
expectError(session.delete('nope'))
expectError(session.increment('nope'))
expectError(session.get('seen'))
expectType<boolean>(session.has('views'))
expectType<void>(session.delete('seen:/home'))

// app.sessions.create takes the declared keys, with their types
expectType<Promise<CreatedSession>>(app.sessions.create({ user: { id: 1 }, views: 0 }))
expectType<Promise<CreatedSession>>(app.sessions.create({ 'seen:/home': 1 }, { ttl: 60 }))
expectError(app.sessions.create({ user: { id: '1' } }))
expectError(app.sessions.create({ veiws: 0 }))
