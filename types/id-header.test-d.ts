// The session id in a header: docs/header-ids.md, seen through the package's own name.
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { expectAssignable, expectError, expectType } from 'tsd'
import redisSession, { type RedisSessionOptions } from 'fastify-session-redis'

const app = Fastify()
const secret = 'a-secret-of-at-least-32-characters!'

// the snippet of the page
await app.register(redisSession, { client: new Redis(), secret, idFrom: 'header' }) // header: 'x-session-id'
app.post('/api/login', async (req) => {
  await req.session.regenerate()
  req.session.set('user', { id: 42 })
  return 'ok' // the response carries x-session-id: <signed id>; send it back with every request
})

expectAssignable<RedisSessionOptions>({ secret, idFrom: 'both', header: 'x-auth-session' })
expectAssignable<RedisSessionOptions>({ secret, idFrom: 'cookie' })
expectType<'cookie' | 'header' | 'both' | undefined>(({} as RedisSessionOptions).idFrom)
expectError<RedisSessionOptions>({ secret, idFrom: 'query' })
expectError<RedisSessionOptions>({ secret, idFrom: 'header', header: 42 })
