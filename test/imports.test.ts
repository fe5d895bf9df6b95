import { test } from 'tap'
import { createRequire } from 'node:module'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import Fastify from 'fastify'
import { SECRET, connect } from './helpers/app.js'

const run = promisify(execFile)

// Both load the built package through its own name (package.json "exports"), as a user would.
test('import by package name: default and named exports', async (t) => {
  const mod = await import('fastify-session-redis')
  t.equal(typeof mod.default, 'function')
  t.equal(mod.redisSession, mod.default)
  t.equal(typeof mod.errors.FST_REDIS_SESSION_GONE, 'function')
  const client = await connect(t)
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(mod.default, { client, secret: SECRET })
  app.get('/', async (req) => req.session.isNew)
  t.equal((await app.inject('/')).body, 'true')
})

test('require() of the package works', async (t) => {
  const require = createRequire(import.meta.url)
  const mod = require('fastify-session-redis')
  t.equal(typeof mod.redisSession, 'function')
  t.equal(mod.default, mod.redisSession)
})

test('a CommonJS program can register the plugin', async (t) => {
  const program = `
    const Fastify = require('fastify')
    const { Redis } = require('ioredis')
    const { redisSession } = require('fastify-session-redis')
    const app = Fastify()
    const client = new Redis(process.argv[1])
    app.register(redisSession, { client, secret: process.argv[2] })
    app.post('/', async (req) => { req.session.set('a', 1); return req.session.id })
    app.inject({ method: 'POST', url: '/' }).then(async (res) => {
      console.log(res.statusCode, typeof res.headers['set-cookie'])
      await app.close()
      client.disconnect()
    })
  `
  const { sharedRedisUrl } = await import('./helpers/app.js')
  const { stdout } = await run(process.execPath, ['-e', program, await sharedRedisUrl(), SECRET], { timeout: 20_000 })
  t.equal(stdout.trim(), '200 string')
})
