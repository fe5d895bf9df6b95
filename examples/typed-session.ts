// A typed session: the shape is declared once, as a TypeBox schema, which the plugin checks at run
// time and the compiler checks at build time. No casts anywhere.
//
// Type-checked by `npx tsc -p examples` (its own program: the augmentation below would otherwise
// retype the session for every file compiled with it). It imports the built package: `npm run build`
// first, then run it with a TypeScript runner, with SESSION_SECRET and optionally REDIS_URL set.
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { Type, type Static } from '@sinclair/typebox'
import redisSession, { errors } from 'fastify-session-redis'

const Theme = Type.Union([Type.Literal('light'), Type.Literal('dark')])

const sessionSchema = Type.Object({
  user: Type.Object({ id: Type.Integer({ minimum: 1 }), name: Type.String({ minLength: 1, maxLength: 64 }) }),
  views: Type.Integer({ minimum: 0 }),
  theme: Theme
}, { additionalProperties: false })

declare module 'fastify-session-redis' {
  interface SessionData extends Static<typeof sessionSchema> {}
}

const secret = process.env.SESSION_SECRET
if (secret === undefined) throw new Error('set SESSION_SECRET (at least 32 characters)')

const app = Fastify({ logger: true })
await app.register(redisSession, {
  client: new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'),
  secret,
  schema: sessionSchema
})

const LoginBody = Type.Object({ id: Type.Integer({ minimum: 1 }), name: Type.String() })
app.post<{ Body: Static<typeof LoginBody> }>('/login', { schema: { body: LoginBody } }, async (request, reply) => {
  await request.session.regenerate()
  try {
    request.session.set('user', { id: request.body.id, name: request.body.name })
  } catch (err) {
    // the session schema is stricter than the route's (name length): answer 400, not 500
    if (err instanceof errors.FST_REDIS_SESSION_SCHEMA_MISMATCH) return reply.code(400).send({ message: err.message })
    throw err
  }
  return { ok: true }
})

app.get('/', async (request) => {
  const views = request.session.increment('views')
  const user = request.session.get('user') // { id: number, name: string } | undefined
  return { views, user: user?.name ?? null, theme: request.session.get('theme') ?? 'light' }
})

// the route's body schema is the session schema's own `theme`
const ThemeBody = Type.Object({ theme: Theme })
app.put<{ Body: Static<typeof ThemeBody> }>('/theme', { schema: { body: ThemeBody } }, async (request) => {
  request.session.set('theme', request.body.theme)
  return { theme: request.body.theme }
})

app.post('/logout', async (request) => {
  await request.session.destroy()
  return { ok: true }
})

// no session work at all on this route: request.session is null here
app.get('/health', { config: { session: false } }, async () => ({ ok: true }))

await app.listen({ port: Number(process.env.PORT ?? 3000) })
