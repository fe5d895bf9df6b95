// README "Quick start", as the README shows it (test/docs.test.ts checks that the two stay the same).
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { expectType } from 'tsd'
import redisSession from 'fastify-session-redis'

const app = Fastify()
await app.register(redisSession, { client: new Redis(), secret: process.env.SESSION_SECRET })

app.post('/login', async (req) => {
  await req.session.regenerate(['cart']) // a new id at every privilege change, keeping only the cart
  req.session.set('user', { id: 42 })
  return 'ok'
})
app.get('/me', async (req) => req.session.get('user') ?? null)
app.post('/logout', async (req) => {
  await req.session.destroy()
  return 'bye'
})

await app.listen({ port: 3000 })

app.get('/typed', async (req) => {
  expectType<unknown>(req.session.get('user'))
})
