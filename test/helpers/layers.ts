import { test, type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import fastifyCookie from '@fastify/cookie'
import fastifySession from '@fastify/session'
import redisSession from '../../lib/index.js'
import { connect, uniquePrefix, SECRET } from './app.js'

/** A session plugin that ecosystem flows run on: this one, or @fastify/session as the control. */
export interface SessionLayer {
  name: string
  register: (t: Test, app: FastifyInstance) => Promise<void>
}

export const layers: SessionLayer[] = [
  {
    name: 'fastify-session-redis',
    register: async (t, app) => {
      await app.register(redisSession, { client: await connect(t), secret: SECRET, prefix: uniquePrefix() })
    }
  },
  {
    name: '@fastify/session (control)',
    register: async (_t, app) => {
      await app.register(fastifyCookie)
      await app.register(fastifySession, { secret: SECRET, cookieName: 'sid', cookie: { secure: false } })
    }
  }
]

/** Registers the flow once per session layer: both must agree. */
export function bothLayers (name: string, flow: (t: Test, layer: SessionLayer) => Promise<void>): void {
  for (const layer of layers) test(`${name} (${layer.name})`, (t) => flow(t, layer))
}

/**
 * Keeps the cookies a real HTTP response set in `jar`, as a browser does (an empty or Max-Age=0
 * cookie removes its entry); returns what the response set, name by name.
 */
export function keepCookies (jar: Map<string, string>, res: Response): Map<string, string> {
  const set = new Map<string, string>()
  for (const line of res.headers.getSetCookie()) {
    const [pair, ...attributes] = line.split(';').map(part => part.trim())
    const eq = pair.indexOf('=')
    const name = pair.slice(0, eq)
    const value = pair.slice(eq + 1)
    set.set(name, value)
    if (value === '' || attributes.some(a => /^max-age=0$/i.test(a))) jar.delete(name)
    else jar.set(name, value)
  }
  return set
}
