// docs/schema.md, as the page shows it (test/docs.test.ts checks that the two stay the same): a
// program of its own, as the augmentation retypes SessionData for every file compiled with it.
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import type { Static } from '@sinclair/typebox'
import { expectType } from 'tsd'
import redisSession, { Type, type SessionDataOf } from 'fastify-session-redis'

const app = Fastify()
const client = new Redis()
const secret = 'a-secret-of-at-least-32-characters!'

const sessionSchema = Type.Object({
  user: Type.Object({ id: Type.Integer(), name: Type.String({ maxLength: 64 }) }),
  views: Type.Integer({ minimum: 0 }),
  theme: Type.Union([Type.Literal('light'), Type.Literal('dark')])
}, { additionalProperties: false })

declare module 'fastify-session-redis' {
  interface SessionData extends SessionDataOf<typeof sessionSchema> {}
}

await app.register(redisSession, { client, secret, schema: sessionSchema })

expectType<SessionDataOf<typeof sessionSchema>>({} as Static<typeof sessionSchema>)
app.get('/', async (req) => {
  expectType<{ id: number, name: string } | undefined>(req.session.get('user'))
})
