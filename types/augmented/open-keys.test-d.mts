// SessionData with declared members and an index signature, the way to allow undeclared keys. A
// program of its own: see session-data.test-d.mts.
import { expectError, expectType } from 'tsd'
import type { NumericSessionKey, Session, SessionKey } from 'fastify-session-redis'

declare module 'fastify-session-redis' {
  interface SessionData {
    user: { id: number }
    views: number
    [key: string]: unknown
  }
}

declare const session: Session

expectType<string>({} as SessionKey)
expectType<'views'>({} as NumericSessionKey)

// declared keys keep their types
expectType<number | undefined>(session.get('views'))
expectType<{ id: number } | undefined>(session.get('user'))
expectError(session.set('views', 'x'))
expectError(session.set('user', { id: '42' }))
expectType<number>(session.increment('views'))
expectError(session.increment('user'))

// any other key reads as unknown and takes any value, but is not incremented without a numeric type
expectType<unknown>(session.get('anything'))
session.set('anything', { nested: [1, 'two'] })
expectType<boolean>(session.has('anything'))
expectError(session.increment('anything'))
