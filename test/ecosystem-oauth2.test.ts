import { randomBytes } from 'node:crypto'
import type { Test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import oauthPlugin, { type OAuth2Namespace } from '@fastify/oauth2'
import { bothLayers, keepCookies, type SessionLayer } from './helpers/layers.js'

// @fastify/oauth2 8 with the state kept in the session, as its README shows for @fastify/session
// (property style: `request.session.state = state`), against a fake provider on loopback, over real
// HTTP, on our plugin and on @fastify/session itself (the control).

/** `request.session` as code written for @fastify/session uses it: a bag of properties. */
function props (request: FastifyRequest): Record<string, unknown> {
  return request.session as unknown as Record<string, unknown>
}

interface Reply {
  status: number
  location: string | null
  body: string
  json: <T = Record<string, unknown>>() => T
}

/** fetch with a cookie jar, redirects left to the test; every request is bounded by a timeout. */
class Browser {
  readonly jar = new Map<string, string>()
  constructor (readonly base: string) {}

  async request (path: string): Promise<Reply> {
    const headers: Record<string, string> = {}
    if (this.jar.size > 0) headers.cookie = [...this.jar].map(([name, value]) => `${name}=${value}`).join('; ')
    const res = await fetch(this.base + path, { headers, redirect: 'manual', signal: AbortSignal.timeout(10_000) })
    keepCookies(this.jar, res)
    const body = await res.text()
    return { status: res.status, location: res.headers.get('location'), body, json: () => JSON.parse(body) }
  }
}

async function listen (app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  return `http://127.0.0.1:${port}`
}

interface TokenRequest { body: Record<string, string>, authorization: string | undefined }

/** A provider's token endpoint: `good-code` buys a token, anything else is an invalid grant. */
async function fakeProvider (t: Test): Promise<{ url: string, requests: TokenRequest[] }> {
  const provider = Fastify()
  t.teardown(() => provider.close())
  const requests: TokenRequest[] = []
  provider.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)))
  })
  provider.post('/token', async (request, reply) => {
    const body = request.body as Record<string, string>
    requests.push({ body, authorization: request.headers.authorization })
    if (body.grant_type !== 'authorization_code' || body.code !== 'good-code') {
      return reply.code(400).send({ error: 'invalid_grant' })
    }
    return { access_token: `token-for-${body.code}`, token_type: 'bearer', expires_in: 3600 }
  })
  return { url: await listen(provider), requests }
}

const CALLBACK = 'http://127.0.0.1/login/fake/callback'

async function oauthApp (t: Test, layer: SessionLayer, tokenHost: string): Promise<Browser> {
  const app = Fastify()
  t.teardown(() => app.close())
  await layer.register(t, app)
  // the README's example, with a random state
  const generateStateFunction = (request: FastifyRequest): string => {
    const state = randomBytes(10).toString('hex')
    props(request).state = state
    return state
  }
  const checkStateFunction = (request: FastifyRequest, callback: (err?: Error) => void): void => {
    if ((request.query as { state?: string }).state === props(request).state) {
      callback()
      return
    }
    callback(new Error('Invalid state'))
  }
  await app.register(oauthPlugin, {
    name: 'fakeOAuth2',
    credentials: {
      client: { id: 'client-id', secret: 'client-secret' },
      auth: { tokenHost, tokenPath: '/token', authorizeHost: 'https://provider.example', authorizePath: '/authorize' }
    },
    startRedirectPath: '/login/fake',
    callbackUri: CALLBACK,
    generateStateFunction: generateStateFunction as oauthPlugin.FastifyGenerateStateFunction,
    checkStateFunction: checkStateFunction as oauthPlugin.FastifyCheckStateFunction
  })
  const oauth = (app as unknown as { fakeOAuth2: OAuth2Namespace }).fakeOAuth2

  app.get('/state', async (request) => ({ state: props(request).state ?? null }))
  app.get('/login/fake/callback', async (request, reply) => {
    let accessToken: string
    try {
      accessToken = (await oauth.getAccessTokenFromAuthorizationCodeFlow(request)).token.access_token
    } catch (err) {
      if ((err as Error).message === 'Invalid state') return reply.code(403).send({ error: 'Invalid state' })
      return reply.code(401).send({ error: 'the provider refused the code' })
    }
    // the state is single-use
    delete props(request).state
    props(request).accessToken = accessToken
    return { accessToken }
  })
  app.get('/token', async (request) => ({ accessToken: props(request).accessToken ?? null }))
  return new Browser(await listen(app))
}

/** Starts the flow; the state the provider is asked to send back. */
async function start (t: Test, browser: Browser): Promise<string> {
  const res = await browser.request('/login/fake')
  t.equal(res.status, 302, 'redirects to the provider')
  const location = new URL(res.location ?? 'missing:')
  t.equal(`${location.origin}${location.pathname}`, 'https://provider.example/authorize')
  t.equal(location.searchParams.get('response_type'), 'code')
  t.equal(location.searchParams.get('client_id'), 'client-id')
  t.equal(location.searchParams.get('redirect_uri'), CALLBACK)
  const state = location.searchParams.get('state') ?? ''
  t.match(state, /^[0-9a-f]{20}$/, 'the generated state')
  return state
}

bothLayers('the state kept in the session lets the callback exchange the code for a token', async (t, layer) => {
  const provider = await fakeProvider(t)
  const browser = await oauthApp(t, layer, provider.url)
  const state = await start(t, browser)
  t.same((await browser.request('/state')).json(), { state }, 'the session holds the state')

  const callback = await browser.request(`/login/fake/callback?code=good-code&state=${state}`)
  t.equal(callback.status, 200)
  t.same(callback.json(), { accessToken: 'token-for-good-code' })
  t.equal(provider.requests.length, 1, 'one token request')
  t.match(provider.requests, [{
    body: { grant_type: 'authorization_code', code: 'good-code', redirect_uri: CALLBACK },
    authorization: `Basic ${Buffer.from('client-id:client-secret').toString('base64')}`
  }], 'the code, with the client credentials')
  t.same((await browser.request('/token')).json(), { accessToken: 'token-for-good-code' }, 'the token is in the session')
  t.same((await browser.request('/state')).json(), { state: null }, 'the state is gone')

  const replay = await browser.request(`/login/fake/callback?code=good-code&state=${state}`)
  t.equal(replay.status, 403, 'a used state does not pass twice')
  t.same(replay.json(), { error: 'Invalid state' })
  t.equal(provider.requests.length, 1, 'and reaches no provider')
})

bothLayers('a wrong state, or a state from another browser, is refused before the provider is asked', async (t, layer) => {
  const provider = await fakeProvider(t)
  const browser = await oauthApp(t, layer, provider.url)
  const state = await start(t, browser)
  const wrong = await browser.request('/login/fake/callback?code=good-code&state=0123456789abcdef0123')
  t.equal(wrong.status, 403)
  t.same(wrong.json(), { error: 'Invalid state' })
  const missing = await browser.request('/login/fake/callback?code=good-code')
  t.equal(missing.status, 403, 'no state at all')
  const stranger = new Browser(browser.base)
  const foreign = await stranger.request(`/login/fake/callback?code=good-code&state=${state}`)
  t.equal(foreign.status, 403, 'the state belongs to the session that started the flow')
  t.same(foreign.json(), { error: 'Invalid state' })
  t.equal(provider.requests.length, 0, 'no code was exchanged')
  t.same((await browser.request('/token')).json(), { accessToken: null })
})

bothLayers('a code the provider refuses gets a 401 and no token', async (t, layer) => {
  const provider = await fakeProvider(t)
  const browser = await oauthApp(t, layer, provider.url)
  const state = await start(t, browser)
  const refused = await browser.request(`/login/fake/callback?code=stolen-code&state=${state}`)
  t.equal(refused.status, 401)
  t.same(refused.json(), { error: 'the provider refused the code' })
  t.match(provider.requests, [{ body: { code: 'stolen-code' } }], 'the provider was asked once')
  t.same((await browser.request('/token')).json(), { accessToken: null })
  t.same((await browser.request('/state')).json(), { state }, 'the state is still there for a retry')
})
