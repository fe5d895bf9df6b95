// README "TypeScript", as the README shows it (test/docs.test.ts checks that the two stay the same):
// a program of its own, as the augmentation retypes SessionData for every file compiled with it. A line
// the README shows as a compile error is marked @ts-expect-error, so it must stay one.
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { expectType } from 'tsd'
import redisSession from 'fastify-session-redis'

declare module 'fastify-session-redis' {
  interface SessionData {
    user: { id: number }
    views: number
    theme?: 'light' | 'dark'
  }
}

const app = Fastify()
await app.register(redisSession, { client: new Redis(), secret: 'a-secret-of-at-least-32-characters!' })
app.get('/', async (req) => {
  req.session.get('views')       // number | undefined: any session may lack any key
  // @ts-expect-error
  req.session.set('views', 'x')  // error: 'x' is not a number
  // @ts-expect-error
  req.session.increment('user')  // error: only keys typed as numbers can be incremented
  // @ts-expect-error
  req.session.get('veiws')       // error: no such key
  expectType<number | undefined>(req.session.get('views'))
})
