// Remember me: docs/remember-me.md, seen through the package's own name.
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { expectError, expectType } from 'tsd'
import redisSession, { type Session } from 'fastify-session-redis'

const app = Fastify()
await app.register(redisSession, { client: new Redis(), secret: 'a-secret-of-at-least-32-characters!' })

// the snippet of the page
app.post<{ Body: { remember?: boolean } }>('/login', async (req) => {
  await req.session.regenerate()
  req.session.set('user', { id: 42 })
  if (req.body.remember === true) {
    req.session.setTtl(30 * 86400) // optional: a longer idle timeout for this session alone
    req.session.rememberMe()
  }
  return 'ok'
})

declare const session: Session
expectType<void>(session.rememberMe())
expectType<void>(session.rememberMe(false))
expectType<boolean>(session.isPersistent)
expectError(session.rememberMe('yes'))
expectError(session.isPersistent = true)
