import { createDecipheriv, createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { isDeepStrictEqual } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'tap'
import fc from 'fast-check'
import Fastify, { type FastifyInstance, type FastifyRequest, type LightMyRequestResponse } from 'fastify'
import { Redis } from 'ioredis'
import redisSession from '../lib/index.js'
import { SECRET, hashedId, keysUnder, uniquePrefix } from './helpers/app.js'
import { startRedis, waitFor, type RedisServer } from './helpers/redis-server.js'
import { travel } from './helpers/time-travel.js'

// A model-based test: random sequences of requests, admin calls, time passing and Redis stalls,
// run against two app instances (each with its own connection) sharing one redis-server, and
// checked after every step against a plain in-memory model of what README and docs/ promise:
// - every request answers: 2xx, or the coded 503 while Redis is stalled;
// - no increment (nor any other change) is lost or applied twice: a change answered with 2xx is
//   stored once; one answered with the timeout's 503 is stored once or not at all (docs/failures.md:
//   a save that timed out may still land), and which of the two is checked in Redis;
// - a live session is listed under its user (`app.sessions.list`), and nothing else is;
//   `destroyAll` ends exactly the user's live sessions;
// - no session, alias or key is readable, or stored, past its idle, absolute or grace deadline,
//   and no key outlives its session's absolute deadline;
// - an ended session never comes back: every cookie it had opens a fresh, empty session.
// Half the runs turn the local cache on in both instances: before each step, each has heard every
// change made before it (a fence: a session the test's client changes, read on each instance until it
// shows the change), which is what docs/local-cache.md promises once an invalidation has arrived; a
// read may then be answered while Redis is stopped, and a load pushes the idle expiry forward at most
// `refreshEvery` late.
// Time passes without sleeping (helpers/time-travel.ts); the model keeps its own times in the
// same frame and moves them back alike. Steps of time never land within MARGIN of a deadline the
// model knows, so whether a deadline has passed is never a matter of milliseconds.
//
// Each run of `npm test` draws a new seed. A failure prints the seed, fast-check's path and the
// shrunk commands; replay it with MODEL_SEED=… MODEL_PATH=… (and MODEL_REPLAY=… for the commands'
// replayPath), e.g. `MODEL_SEED=1 MODEL_PATH=0:1 npx tap --disable-coverage test/model.test.ts`.

const TTL = 600
const ABSOLUTE_TTL = 1000
const ROTATE_EVERY = 300
/**
 * Each run draws one: shorter than `rotateEvery`, or longer, so that an id rotated away can outlive
 * its successor's own rotation. An alias reached through another alias leads nowhere (the client is
 * anonymous); within its own grace window, one naming the current id leads to the session.
 */
const ROTATE_GRACES = [100, 400] as const
/** The plugin's `timeout`, ms; a stall lasts longer. */
const TIMEOUT = 800
/** No step of time lands within this many ms of a known deadline. */
const MARGIN = 30_000
/** A request that has not answered after this long never will: the test fails. */
const ANSWER_WITHIN = TIMEOUT * 4 + 5000
const USERS = ['u1', 'u2'] as const
const JARS = 3
const KEEPABLE = ['n', 'x', 'uid'] as const
/** With the cache: seconds between two refreshes of a session's idle expiry, far within MARGIN. */
const REFRESH_EVERY = 1
/** A fence the cache must show, in ms: bounded, as every wait. */
const FENCE_WITHIN = 10_000

const NUM_RUNS = Number(process.env.MODEL_RUNS ?? 25)
const MAX_COMMANDS = Number(process.env.MODEL_COMMANDS ?? 30)
const TIME_LIMIT = Number(process.env.MODEL_TIME_LIMIT ?? 50_000)

type Data = Record<string, unknown>
type Route = 'read' | 'inc' | 'set' | 'login' | 'regenerate' | 'destroy'

/** One request: which app, as which browser (its cookie jar), and optionally with an old cookie from history. */
interface Req {
  app: number
  jar: number
  route: Route
  /** Sends the history's cookie at this index (modulo its length) instead of the jar's. */
  stale?: number | undefined
  value?: number | string
  /** A set of the value the session it reaches holds when sent (0 when none): `value` is taken then. */
  same?: boolean
  user?: string
  keep?: string[] | undefined
}

/** Epoch ms known to lie between `lo` and `hi` (the start and end of the request that set it). */
interface Win { lo: number, hi: number }
const win = (lo: number, hi: number, plus = 0): Win => ({ lo: lo + plus, hi: hi + plus })

interface Alias {
  /** The stored id (hash) of the old id's key. */
  key: string
  until: Win
  /** The id it names; undefined while not known. */
  successor: string | undefined
}

/** One session as the docs promise it behaves, across the ids it has had. */
class Sess {
  /** The current id; undefined while unknown (rotated in a request that failed, or created by a save that timed out). */
  id: string | undefined
  /** The current key's stored id (the id's hash); undefined only while the id is unknown after a rotation. */
  key: string | undefined
  data: Data
  created: Win
  deadline: Win
  /** When the key expires unless refreshed, before the absolute deadline caps it. */
  idle: Win
  /** Old ids (raw) rotated away from this session, and until when each leads here. */
  readonly aliases = new Map<string, Alias>()
  ended = false
  /** After a stall: what may be stored now, checked and settled against Redis. */
  candidates: Array<Data | 'ended'> | undefined
  /** After a rotation in a request that failed: the old id whose alias names the (unknown) new one. */
  pendingFrom: string | undefined

  constructor (id: string | undefined, key: string | undefined, data: Data, t0: number, t1: number) {
    this.id = id
    this.key = key
    this.data = data
    this.created = win(t0, t1)
    this.deadline = win(t0, t1, ABSOLUTE_TTL * 1000)
    this.idle = win(t0, t1, TTL * 1000)
  }

  get user (): string | undefined {
    return typeof this.data.uid === 'string' ? this.data.uid : undefined
  }

  /** Loaded between t0 and t1; `lag`: ms its idle expiry may have been pushed forward before that (the cache's `refreshEvery`). */
  refreshed (t0: number, t1: number, lag: number): void {
    this.idle = lag === 0 ? win(t0, t1, TTL * 1000) : { lo: Math.max(this.idle.lo, t0 - lag + TTL * 1000), hi: t1 + TTL * 1000 }
  }

  rotationDue (now: number): boolean {
    return now - this.created.hi >= ROTATE_EVERY * 1000
  }

  /** Moves to `newId` (undefined: not learnt yet), the old id becoming an alias for the grace window. */
  rotate (newId: string | undefined, t0: number, t1: number, grace: number): void {
    const old = this.id as string
    this.aliases.set(old, { key: hashedId(old), until: win(t0, t1, grace * 1000), successor: newId })
    this.id = newId
    this.key = newId === undefined ? undefined : hashedId(newId)
    if (newId === undefined) this.pendingFrom = old
    this.created = win(t0, t1)
  }
}

/** What a cookie leads to, as the model sees it. */
type Target = { kind: 'anon' } | { kind: 'live', sess: Sess, via: boolean }

/** What a response must do with the session cookie. */
type CookieExpectation = { kind: 'none' } | { kind: 'clear' } | { kind: 'set', id: string }

/** A set of the value its live session already holds: no change, so nothing to save (lib/model/working-document.ts). */
function unchanged (r: Req, target: Target): boolean {
  return r.route === 'set' && target.kind === 'live' && Object.hasOwn(target.sess.data, 'x') && target.sess.data.x === r.value
}

function idOfCookie (value: string): string {
  const decoded = decodeURIComponent(value)
  return decoded.slice(0, decoded.lastIndexOf('.'))
}

/** The new id an alias (docs/rotating-ids.md) names, decrypted with the old id as the client could. */
function successorOf (text: string, oldId: string): string | undefined {
  const match = /^\{"moved":"([A-Za-z0-9_-]+)","until":(\d+)\}$/.exec(text)
  if (match === null) return undefined
  const key = createHash('sha256').update('fastify-session-redis rotation\0' + oldId).digest()
  const decipher = createDecipheriv('aes-256-ctr', key, Buffer.alloc(16))
  return Buffer.concat([decipher.update(Buffer.from(match[1], 'base64url')), decipher.final()]).toString('utf8')
}

function pick (data: Data, keep: readonly string[] | undefined): Data {
  const kept: Data = {}
  for (const key of keep ?? []) if (Object.hasOwn(data, key)) kept[key] = data[key]
  return kept
}

/** How often each situation came up, over every run of this file: printed, so a reader sees what was explored. */
const tally = new Map<string, number>()
function seen (what: string): void {
  tally.set(what, (tally.get(what) ?? 0) + 1)
}

function fail (message: string): never {
  throw new Error(message)
}

function expect (ok: boolean, message: string): void {
  if (!ok) fail(message)
}

/** Resolves when the process is stopped (SIGSTOP delivered), so that no command sent after it runs before SIGCONT. */
async function stopped (pid: number): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('T')) return
    await sleep(5)
  }
  fail('redis-server did not stop')
}

/** One run's deployment and the model of it. */
class World {
  readonly server: RedisServer
  readonly prefix = uniquePrefix()
  readonly admin: Redis
  readonly clients: Redis[] = []
  readonly apps: FastifyInstance[] = []
  readonly sessions: Sess[] = []
  readonly jars: Array<string | undefined> = new Array<string | undefined>(JARS).fill(undefined)
  /** Every cookie value a response set, oldest first: replayed by requests with `stale`. */
  readonly history: string[] = []
  /** Data of new sessions whose first save timed out: each may have landed after the stall. */
  maybeCreated: Data[] = []
  /** Sessions a stalled request may have refreshed once Redis resumed. */
  lateRefresh = new Set<Sess>()
  readonly log: string[] = []

  readonly grace: number
  /** Both apps with the local cache on. */
  readonly cache: boolean
  /** ms a load may leave the idle expiry unrefreshed: with the cache, `refreshEvery` (and a few ms of clock rounding). */
  readonly lag: number

  constructor (server: RedisServer, admin: Redis, grace: number, cache: boolean) {
    this.server = server
    this.admin = admin
    this.grace = grace
    this.cache = cache
    this.lag = cache ? REFRESH_EVERY * 1000 + 5 : 0
  }

  static async create (server: RedisServer, admin: Redis, grace: number, cache = false): Promise<World> {
    const world = new World(server, admin, grace, cache)
    for (let i = 0; i < 2; i++) {
      const client = new Redis(server.url, { maxRetriesPerRequest: 1 })
      world.clients.push(client)
      world.apps.push(await world.#build(client))
    }
    return world
  }

  async close (): Promise<void> {
    for (const app of this.apps) await app.close()
    for (const client of this.clients) client.disconnect()
  }

  async #build (client: Redis): Promise<FastifyInstance> {
    const app = Fastify()
    await app.register(redisSession, {
      client,
      secret: SECRET,
      prefix: this.prefix,
      ttl: TTL,
      absoluteTtl: ABSOLUTE_TTL,
      rotateEvery: ROTATE_EVERY,
      rotateGrace: this.grace,
      timeout: TIMEOUT,
      userKey: 'uid',
      ...(this.cache ? { cache: { refreshEvery: REFRESH_EVERY } } : {})
    })
    const loaded = new WeakMap<FastifyRequest, unknown>()
    app.addHook('preHandler', async (req) => {
      loaded.set(req, { isNew: req.session.isNew, id: req.session.id, data: req.session.toJSON() })
      // the stall begins after the load, before what the route does
      if (req.headers['x-stall'] === '1') {
        this.server.pause()
        await stopped(this.server.pid() as number)
      }
    })
    const answer = (req: FastifyRequest, extra: Data = {}): Data => ({ loaded: loaded.get(req), id: req.session.id, data: req.session.toJSON(), ...extra })
    app.get('/read', async (req) => answer(req))
    app.post('/inc', async (req) => {
      const n = req.session.increment('n')
      return answer(req, { n })
    })
    app.post<{ Body: { value: unknown } }>('/set', async (req) => {
      req.session.set('x', req.body.value)
      return answer(req)
    })
    app.post<{ Body: { user: string, keep?: string[] } }>('/login', async (req) => {
      await req.session.regenerate(req.body.keep)
      req.session.set('uid', req.body.user)
      return answer(req)
    })
    app.post<{ Body: { keep?: string[] } }>('/regenerate', async (req) => {
      await req.session.regenerate(req.body.keep)
      return answer(req)
    })
    app.post('/destroy', async (req) => {
      await req.session.destroy()
      return answer(req)
    })
    await app.ready()
    return app
  }

  note (line: string): void {
    this.log.push(line)
  }

  live (): Sess[] {
    return this.sessions.filter(s => !s.ended)
  }

  /** What a cookie naming `id` leads to at `now`. */
  resolve (id: string | undefined, now: number): Target {
    if (id === undefined) return { kind: 'anon' }
    for (const sess of this.live()) {
      if (sess.id === id) return { kind: 'live', sess, via: false }
      const alias = sess.aliases.get(id)
      if (alias !== undefined && alias.until.hi <= now) continue
      // an alias naming an id that was rotated away in turn leads nowhere
      if (alias !== undefined && alias.successor === sess.id) {
        seen('through an alias')
        return { kind: 'live', sess, via: true }
      }
      if (alias !== undefined) seen('an alias of an alias')
    }
    return { kind: 'anon' }
  }

  /** What `cookie` leads to at `now`; a set of the same value takes, from here, the value that session holds. */
  #target (r: Req, cookie: string | undefined, now: number): Target {
    const target = this.resolve(cookie === undefined ? undefined : idOfCookie(cookie), now)
    if (r.same === true) r.value = target.kind === 'live' && Object.hasOwn(target.sess.data, 'x') ? target.sess.data.x as number | string : 0
    return target
  }

  cookieFor (r: Req): string | undefined {
    // counted from the newest: small numbers, the most often drawn, name ids rotated or ended lately
    if (r.stale !== undefined && this.history.length > 0) return this.history[this.history.length - 1 - (r.stale % this.history.length)]
    return this.jars[r.jar]
  }

  async inject (r: Req, cookie: string | undefined, stall = false): Promise<LightMyRequestResponse> {
    const headers: Record<string, string> = {}
    if (cookie !== undefined) headers.cookie = `sid=${cookie}`
    if (stall) headers['x-stall'] = '1'
    const payload = r.route === 'set'
      ? { value: r.value }
      : r.route === 'login' ? { user: r.user, keep: r.keep } : r.route === 'regenerate' ? { keep: r.keep } : undefined
    const method = r.route === 'read' ? 'GET' : 'POST'
    let timer: NodeJS.Timeout | undefined
    const never = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => { reject(new Error(`${describe(r)} did not answer within ${ANSWER_WITHIN} ms`)) }, ANSWER_WITHIN)
    })
    try {
      return await Promise.race([this.apps[r.app].inject({ method, url: `/${r.route}`, headers, ...(payload === undefined ? {} : { payload }) }), never])
    } finally {
      clearTimeout(timer)
    }
  }

  /** Checks a 2xx answer against the model and applies it. */
  answered (r: Req, target: Target, res: LightMyRequestResponse, t0: number, t1: number): void {
    const what = describe(r)
    expect(res.statusCode === 200, `${what}: answered ${res.statusCode} ${res.body}`)
    const body = res.json<{ loaded: { isNew: boolean, id: string, data: Data }, id: string, data: Data, n?: number }>()
    let sess: Sess | undefined
    let cookie: CookieExpectation = { kind: 'none' }
    if (target.kind === 'anon') {
      expect(body.loaded.isNew, `${what}: a cookie the model holds ended opened a stored session (${JSON.stringify(body.loaded.data)})`)
      expect(isDeepStrictEqual(body.loaded.data, {}), `${what}: a fresh session holds data`)
    } else {
      sess = target.sess
      expect(!body.loaded.isNew, `${what}: a live session${target.via ? ', reached through its alias,' : ''} was not found (model data ${JSON.stringify(sess.data)})`)
      expect(isDeepStrictEqual(body.loaded.data, sess.data), `${what}: loaded ${JSON.stringify(body.loaded.data)}, the model holds ${JSON.stringify(sess.data)}`)
      sess.refreshed(t0, t1, this.lag)
      if (sess.rotationDue(t0)) {
        expect(body.loaded.id !== sess.id, `${what}: a session due for rotation kept its id`)
        sess.rotate(body.loaded.id, t0, t1, this.grace)
        seen('rotated')
        cookie = { kind: 'set', id: body.loaded.id }
      } else {
        expect(body.loaded.id === sess.id, `${what}: the session's id changed without a rotation`)
        if (target.via) cookie = { kind: 'set', id: body.loaded.id }
      }
    }
    switch (r.route) {
      case 'read':
        break
      case 'inc':
      case 'set': {
        if (sess === undefined) {
          sess = this.#created(body.id, changed({}, r), t0, t1)
          cookie = { kind: 'set', id: body.id }
        } else {
          sess.data = changed(sess.data, r)
        }
        if (r.route === 'inc') expect(body.n === sess.data.n, `${what}: returned ${body.n}, the model counts ${String(sess.data.n)}`)
        break
      }
      case 'login':
      case 'regenerate': {
        const kept = sess === undefined ? {} : pick(sess.data, r.keep)
        if (sess !== undefined) this.#end(sess, 'regenerated')
        const data = r.route === 'login' ? { ...kept, uid: r.user } : kept
        if (Object.keys(data).length > 0) {
          sess = this.#created(body.id, data, t0, t1)
          cookie = { kind: 'set', id: body.id }
        } else {
          cookie = sess === undefined ? { kind: 'none' } : { kind: 'clear' }
          sess = undefined
        }
        break
      }
      case 'destroy':
        if (sess !== undefined) {
          this.#end(sess, 'destroyed')
          cookie = { kind: 'clear' }
          sess = undefined
        }
        break
    }
    if (sess !== undefined) expect(isDeepStrictEqual(body.data, sess.data), `${what}: the route saw ${JSON.stringify(body.data)}, the model holds ${JSON.stringify(sess.data)}`)
    this.#checkCookie(r, res, cookie)
  }

  #created (id: string, data: Data, t0: number, t1: number): Sess {
    const sess = new Sess(id, hashedId(id), data, t0, t1)
    this.sessions.push(sess)
    return sess
  }

  #end (sess: Sess, why: string): void {
    sess.ended = true
    this.note(`  ${sess.id ?? sess.key ?? '?'} ${why}`)
    seen(why.startsWith('ended by destroyAll') ? 'ended by destroyAll' : why.startsWith('ended by ') && why.includes(' on app ') ? 'ended while racing an increment' : why)
  }

  #checkCookie (r: Req, res: LightMyRequestResponse, expected: CookieExpectation): void {
    const what = describe(r)
    const sent = res.cookies.filter(c => c.name === 'sid')
    expect(sent.length <= 1, `${what}: ${sent.length} session cookies`)
    const cookie = sent[0]
    if (expected.kind === 'none') {
      expect(cookie === undefined, `${what}: set a session cookie the model did not expect`)
      return
    }
    expect(cookie !== undefined, `${what}: no session cookie, the model expected one to be ${expected.kind === 'set' ? 'set' : 'cleared'}`)
    if (expected.kind === 'clear') {
      expect(cookie.value === '', `${what}: the session cookie was set, not cleared`)
      this.jars[r.jar] = undefined
      return
    }
    expect(idOfCookie(cookie.value) === expected.id, `${what}: the cookie names another id than the session`)
    this.jars[r.jar] = cookie.value
    this.history.push(cookie.value)
  }

  /** One request outside any stall. */
  async request (r: Req): Promise<void> {
    const cookie = this.cookieFor(r)
    const t0 = Date.now()
    const target = this.#target(r, cookie, t0)
    const hits = this.apps[r.app].sessions.stats().cacheHits
    const res = await this.inject(r, cookie)
    if (this.apps[r.app].sessions.stats().cacheHits > hits) seen('answered by the cache')
    this.answered(r, target, res, t0, Date.now())
  }

  /**
   * With the cache, before a step: each app has heard every change made before now. A fence session
   * is answered by each app's cache, then changed by the test's client; once an app's read shows the
   * change, its invalidation (sent after every earlier one, on one socket) has arrived, or the cache
   * answers nothing until a PING sent after it proves it has. The fence is gone before the step.
   */
  async heard (): Promise<void> {
    if (!this.cache) return
    const fence = await this.apps[0].sessions.create({ fence: 0 })
    const key = this.prefix + hashedId(fence.id)
    const read = async (app: FastifyInstance): Promise<{ hit: boolean, value: unknown }> => {
      const hits = app.sessions.stats().cacheHits
      const session = await app.sessions.fromHeaders({ cookie: fence.cookie })
      return { hit: app.sessions.stats().cacheHits > hits, value: session.get('fence') }
    }
    const within = { timeout: FENCE_WITHIN, interval: 5 }
    for (const app of this.apps) await waitFor('the fence: a read answered by the cache', async () => (await read(app)).hit, within)
    const text = await this.admin.get(key)
    await this.admin.set(key, (text as string).replace('"fence":0', '"fence":1'), 'KEEPTTL')
    for (const app of this.apps) await waitFor('the fence: the change seen', async () => (await read(app)).value === 1, within)
    await this.admin.del(key)
  }

  /**
   * Two requests sent at once with one cookie to the two apps: `x` (an increment, or a logout or
   * login that ends the session) and `y`, an increment. docs/design.md "Concurrency": both increments land,
   * whichever instance rotates the id; of an increment racing the end of its session, the change
   * either landed before (and a regenerate(keep) carries it), or the increment answers 409
   * FST_REDIS_SESSION_GONE, or it loaded after the end and started a new session; the ended session
   * never comes back.
   */
  async race (x: Req, y: Req): Promise<void> {
    const cookie = this.jars[x.jar]
    const t0 = Date.now()
    const target = this.resolve(cookie === undefined ? undefined : idOfCookie(cookie), t0)
    const [rx, ry] = await Promise.all([this.inject(x, cookie), this.inject(y, cookie)])
    const t1 = Date.now()
    if (target.kind === 'anon') {
      // two fresh sessions, nothing shared
      this.answered(x, target, rx, t0, t1)
      this.answered(y, target, ry, t0, t1)
      return
    }
    const sess = target.sess
    const what = `${describe(x)} racing ${describe(y)}`
    const count = (data: Data): number => typeof data.n === 'number' ? data.n : 0
    type Body = { loaded: { isNew: boolean, id: string, data: Data }, id: string, data: Data, n?: number }
    const loadedOk = (body: Body, name: string): void => {
      expect(!body.loaded.isNew || name === 'y', `${what}: ${name} did not find the live session`)
      if (body.loaded.isNew) return
      const { n, ...rest } = body.loaded.data
      const { n: _n, ...modelRest } = sess.data
      expect(isDeepStrictEqual(rest, modelRest), `${what}: ${name} loaded ${JSON.stringify(body.loaded.data)}, the model holds ${JSON.stringify(sess.data)}`)
      const seen = typeof n === 'number' ? n : 0
      expect(seen === count(sess.data) || seen === count(sess.data) + 1, `${what}: ${name} loaded n = ${String(n)}, the model allows ${count(sess.data)} or one more`)
    }
    const cookies = [sent(rx), sent(ry)]
    if (x.route === 'inc') {
      expect(rx.statusCode === 200 && ry.statusCode === 200, `${what}: answered ${rx.statusCode} and ${ry.statusCode}: ${rx.body} ${ry.body}`)
      const bx = rx.json<Body>()
      const by = ry.json<Body>()
      loadedOk(bx, 'x')
      loadedOk(by, 'y')
      expect(!by.loaded.isNew, `${what}: y did not find the live session`)
      for (const body of [bx, by]) expect(body.n === count(body.loaded.data) + 1, `${what}: an increment returned ${String(body.n)}, not what it loaded plus one`)
      sess.data = { ...sess.data, n: count(sess.data) + 2 }
      seen('race: two increments')
      sess.refreshed(t0, t1, this.lag)
      const ids = new Set(cookies.filter(c => c !== undefined).map(c => idOfCookie((c as { value: string }).value)))
      expect(ids.size <= 1, `${what}: the two answers name two different ids`)
      const [id] = ids
      if (target.via) expect(id !== undefined, `${what}: a session reached through its alias sent no cookie`)
      if (id !== undefined && id !== sess.id) {
        expect(sess.rotationDue(t0), `${what}: the id changed without a rotation`)
        sess.rotate(id, t0, t1, this.grace)
        seen('race: rotated')
      }
      if (id !== undefined) {
        const value = (cookies.find(c => c !== undefined) as { value: string }).value
        this.jars[x.jar] = value
        this.history.push(value)
      }
      return
    }
    expect(rx.statusCode === 200, `${what}: the ending request answered ${rx.statusCode}: ${rx.body}`)
    const bx = rx.json<Body>()
    loadedOk(bx, 'x')
    let data = sess.data
    let fresh: string | undefined
    seen(ry.statusCode === 409 ? 'race: the increment got 409' : ry.json<Body>().loaded.isNew ? 'race: the increment started a new session' : 'race: the increment landed first')
    if (ry.statusCode === 409) {
      expect(ry.json<{ code: string }>().code === 'FST_REDIS_SESSION_GONE', `${what}: 409 without the GONE code: ${ry.body}`)
      expect(cookies[1] === undefined, `${what}: the increment that failed set a cookie`)
    } else {
      expect(ry.statusCode === 200, `${what}: the increment answered ${ry.statusCode}: ${ry.body}`)
      const by = ry.json<Body>()
      loadedOk(by, 'y')
      expect(by.n === count(by.loaded.data) + 1, `${what}: the increment returned ${String(by.n)}, not what it loaded plus one`)
      if (by.loaded.isNew) {
        // it loaded once the session had ended: a new session of its own
        expect(by.n === 1, `${what}: a new session's increment returned ${String(by.n)}`)
        expect(cookies[1] !== undefined && idOfCookie(cookies[1].value) === by.id, `${what}: the increment's new session sent no cookie`)
        fresh = by.id
      } else {
        data = { ...data, n: count(data) + 1 }
      }
      if (cookies[1] !== undefined) this.history.push(cookies[1].value)
    }
    // either load may have rotated the id first: the old key then holds an alias for the grace window
    if (sess.rotationDue(t0)) sess.aliases.set(sess.id as string, { key: sess.key as string, until: win(t0, t1, this.grace * 1000), successor: undefined })
    this.#end(sess, `ended by ${describe(x)}`)
    if (fresh !== undefined) {
      this.#created(fresh, { n: 1 }, t0, t1)
      this.jars[y.jar] = (cookies[1] as { value: string }).value
    }
    const kept = x.route === 'destroy' ? {} : pick(data, x.keep)
    const next = x.route === 'login' ? { ...kept, uid: x.user } : kept
    if (Object.keys(next).length > 0) {
      expect(cookies[0] !== undefined && idOfCookie(cookies[0].value) === bx.id, `${what}: the new session sent no cookie`)
      expect(isDeepStrictEqual(bx.data, next), `${what}: the new session holds ${JSON.stringify(bx.data)}, the model ${JSON.stringify(next)}`)
      this.#created(bx.id, next, t0, t1)
      this.jars[x.jar] = (cookies[0] as { value: string }).value
      this.history.push(this.jars[x.jar] as string)
    } else {
      expect(cookies[0] !== undefined && cookies[0].value === '', `${what}: the ended session's cookie was not cleared`)
      if (fresh === undefined) this.jars[x.jar] = undefined
    }
  }

  /**
   * `app.sessions.destroyAll(user)` on one app while an increment with a jar's cookie runs on the
   * other: every session the user had when it started ends (also one the increment rotates
   * meanwhile), and the count says how many; the increment landed before, or answers 409, or loaded
   * once its session had ended and started a new one.
   */
  async raceDestroyAll (app: number, user: string, y: Req): Promise<void> {
    const cookie = this.jars[y.jar]
    const t0 = Date.now()
    const target = this.resolve(cookie === undefined ? undefined : idOfCookie(cookie), t0)
    const mine = this.live().filter(s => s.user === user)
    const [count, ry] = await Promise.all([this.apps[app].sessions.destroyAll(user), this.inject(y, cookie)])
    const t1 = Date.now()
    const what = `destroyAll(${user}) on app ${app} racing ${describe(y)}`
    expect(count === mine.length, `${what}: ended ${count} sessions, the model holds ${mine.length} live`)
    if (target.kind === 'anon' || target.sess.user !== user) {
      // not one of the user's sessions: the increment goes on as alone
      for (const sess of mine) this.#end(sess, 'ended by destroyAll')
      this.answered(y, target, ry, t0, t1)
      return
    }
    const sess = target.sess
    const told = sent(ry)
    if (told !== undefined) this.history.push(told.value)
    if (sess.rotationDue(t0)) sess.aliases.set(sess.id as string, { key: sess.key as string, until: win(t0, t1, this.grace * 1000), successor: undefined })
    for (const ended of mine) this.#end(ended, 'ended by destroyAll')
    if (ry.statusCode === 409) {
      seen('race: destroyAll, the increment got 409')
      expect(ry.json<{ code: string }>().code === 'FST_REDIS_SESSION_GONE', `${what}: 409 without the GONE code: ${ry.body}`)
      expect(told === undefined, `${what}: the increment that failed set a cookie`)
      return
    }
    expect(ry.statusCode === 200, `${what}: the increment answered ${ry.statusCode}: ${ry.body}`)
    const by = ry.json<{ loaded: { isNew: boolean, data: Data }, id: string, n: number }>()
    if (!by.loaded.isNew) {
      seen('race: destroyAll, the increment landed first')
      expect(by.n === (typeof sess.data.n === 'number' ? sess.data.n : 0) + 1, `${what}: the increment returned ${by.n}, the model counts ${String(sess.data.n)}`)
      if (told !== undefined) this.jars[y.jar] = told.value
      return
    }
    seen('race: destroyAll, the increment started a new session')
    expect(by.n === 1 && told !== undefined && idOfCookie(told.value) === by.id, `${what}: a new session's increment returned ${by.n}, or sent no cookie`)
    this.#created(by.id, { n: 1 }, t0, t1)
    this.jars[y.jar] = (told as { value: string }).value
  }

  async destroyAll (app: number, user: string): Promise<void> {
    const expected = this.live().filter(s => s.user === user)
    const count = await this.apps[app].sessions.destroyAll(user)
    expect(count === expected.length, `destroyAll(${user}) on app ${app} ended ${count} sessions, the model holds ${expected.length} live`)
    for (const sess of expected) this.#end(sess, `ended by destroyAll(${user})`)
  }

  /** Lets about `wanted` ms pass, moved off every deadline by MARGIN; ends what expired. */
  async pass (wanted: number): Promise<number> {
    const now = Date.now()
    const deadlines: number[] = []
    for (const sess of this.live()) {
      for (const w of [sess.deadline, sess.idle]) deadlines.push(w.lo, w.hi)
      deadlines.push(sess.created.lo + ROTATE_EVERY * 1000, sess.created.hi + ROTATE_EVERY * 1000)
      for (const alias of sess.aliases.values()) deadlines.push(alias.until.lo, alias.until.hi)
    }
    let ms = Math.max(1000, Math.round(wanted))
    for (let moved = true, rounds = 0; moved && rounds < 100; rounds++) {
      moved = false
      for (const d of deadlines) {
        if (Math.abs(now + ms - d) < MARGIN) {
          ms = d - now + MARGIN
          moved = true
        }
      }
    }
    await travel(this.admin, this.prefix, ms)
    const back = (w: Win): void => { w.lo -= ms; w.hi -= ms }
    for (const sess of this.sessions) {
      for (const w of [sess.created, sess.deadline, sess.idle]) back(w)
      for (const alias of sess.aliases.values()) back(alias.until)
    }
    const after = Date.now()
    for (const sess of this.live()) {
      if (Math.min(sess.idle.hi, sess.deadline.hi) <= after) this.#end(sess, 'expired')
    }
    return ms
  }

  /** Requests sent while Redis is stopped; each must answer, with the 503 code when it needs Redis. */
  async stallBefore (reqs: Req[]): Promise<void> {
    seen('stall')
    const server = this.server
    server.pause()
    const pausedAt = Date.now()
    try {
      await stopped(server.pid() as number)
      const late = new Map<Sess, Req[]>()
      await Promise.all(reqs.map(async (r) => {
        const cookie = this.cookieFor(r)
        const t0 = Date.now()
        const target = this.#target(r, cookie, t0)
        const needsRedis = cookie !== undefined || r.route === 'inc' || r.route === 'set' || r.route === 'login'
        const res = await this.inject(r, cookie)
        if (!needsRedis) return this.answered(r, target, res, t0, Date.now())
        // with the cache, a read of a session it holds needs no Redis (within the lease), nor a set of the value it already holds
        if (this.cache && (r.route === 'read' || unchanged(r, target)) && res.statusCode === 200) {
          seen(r.route === 'read' ? 'a read answered by the cache while Redis was stopped' : 'a set of the same value answered by the cache while Redis was stopped')
          return this.answered(r, target, res, t0, Date.now())
        }
        this.#unavailable(r, res)
        expect(sent(res) === undefined, `${describe(r)}: a failed request set the session cookie`)
        if (target.kind === 'live') this.lateRefresh.add(target.sess)
        // with the cache, the load may have needed no Redis, and the change that then timed out may land once it resumes
        if (this.cache && target.kind === 'live' && r.route !== 'read') late.set(target.sess, [...late.get(target.sess) ?? [], r])
        // a new session's first save timed out: it may land once Redis resumes (login's index write comes first)
        if (cookie === undefined && r.route === 'inc') this.maybeCreated.push({ n: 1 })
        if (cookie === undefined && r.route === 'set') this.maybeCreated.push({ x: r.value })
      }))
      for (const [sess, changes] of late) sess.candidates = lateOutcomes(sess.data, changes)
      const left = pausedAt + TIMEOUT + 100 - Date.now()
      if (left > 0) await sleep(left)
    } finally {
      server.resume()
    }
    await this.settle()
  }

  /** One request during which Redis stops, after its session was loaded and before the route's change. */
  async stallDuring (r: Req): Promise<void> {
    seen('stall during a request')
    const cookie = this.cookieFor(r)
    const t0 = Date.now()
    const target = this.#target(r, cookie, t0)
    let res: LightMyRequestResponse
    try {
      res = await this.inject(r, cookie, true)
    } finally {
      this.server.resume()
    }
    const t1 = Date.now()
    // loaded before the stall: a set of the value the session holds changes nothing, and saves nothing
    const noChange = unchanged(r, target)
    if (noChange) seen('a set of the same value during a stall')
    const needsRedis = r.route !== 'read' && !noChange && (target.kind === 'live' || r.route === 'inc' || r.route === 'set' || r.route === 'login')
    if (!needsRedis) {
      this.answered(r, target, res, t0, t1)
      await this.settle()
      return
    }
    this.#unavailable(r, res)
    if (target.kind === 'anon') {
      expect(sent(res) === undefined, `${describe(r)}: a failed request set the session cookie`)
      if (r.route === 'inc') this.maybeCreated.push({ n: 1 })
      if (r.route === 'set') this.maybeCreated.push({ x: r.value })
      await this.settle()
      return
    }
    const sess = target.sess
    sess.refreshed(t0, t1, this.lag)
    this.lateRefresh.add(sess)
    const rotated = sess.rotationDue(t0)
    // the load rotated it, or followed its alias, before the stall: a regenerate() or destroy() that
    // then failed still sends the cookie with the session's current id (a failed save sends none),
    // else the client learns the new id only from the alias, later
    const mayTell = (rotated || target.via) && r.route !== 'inc' && r.route !== 'set'
    const told = sent(res)
    if (rotated) seen('rotated by a request that then failed')
    if (told !== undefined) {
      expect(mayTell && told.value !== '', `${describe(r)}: a failed request set the session cookie`)
      const id = idOfCookie(told.value)
      expect(rotated ? id !== sess.id : id === sess.id, `${describe(r)}: a failed request set a cookie naming another id`)
      this.jars[r.jar] = told.value
      this.history.push(told.value)
      if (rotated) sess.rotate(id, t0, t1, this.grace)
    } else if (rotated) {
      sess.rotate(undefined, t0, t1, this.grace)
    }
    sess.candidates = lateOutcomes(sess.data, [r])
    await this.settle()
  }

  #unavailable (r: Req, res: LightMyRequestResponse): void {
    const what = describe(r)
    expect(res.statusCode === 503, `${what}: answered ${res.statusCode} while Redis was stopped: ${res.body}`)
    expect(res.json<{ code: string }>().code === 'FST_REDIS_SESSION_STORE_UNAVAILABLE', `${what}: 503 without the code: ${res.body}`)
  }

  /** After a stall: waits for every late command, then settles what the model left open against Redis. */
  async settle (): Promise<void> {
    // each connection runs its commands in order: a PING answered means every late command before it ran
    await Promise.all([...this.clients, this.admin].map(client => client.ping()))
    const resumed = Date.now()
    for (const sess of this.lateRefresh) sess.idle.hi = Math.max(sess.idle.hi, resumed + TTL * 1000)
    this.lateRefresh.clear()
    for (const sess of this.live()) {
      if (sess.pendingFrom !== undefined) {
        const alias = await this.admin.get(this.prefix + hashedId(sess.pendingFrom))
        const next = alias === null ? undefined : successorOf(alias, sess.pendingFrom)
        if (next === undefined) fail(`a session rotated in a failed request left no alias at its old id (found ${String(alias)})`)
        sess.id = next
        sess.key = hashedId(next)
        const known = sess.aliases.get(sess.pendingFrom)
        if (known !== undefined) known.successor = next
        sess.pendingFrom = undefined
      }
      if (sess.candidates === undefined) continue
      const text = await this.admin.get(this.prefix + (sess.key as string))
      const candidates = sess.candidates
      sess.candidates = undefined
      if (text === null) {
        expect(candidates.includes('ended'), `after a stall, a session whose change timed out is gone (model data ${JSON.stringify(sess.data)})`)
        this.#end(sess, 'ended by a late command')
        continue
      }
      const stored = (JSON.parse(text) as { d: Data }).d
      const match = candidates.find(c => c !== 'ended' && isDeepStrictEqual(c, stored))
      expect(match !== undefined, `after a stall, stored ${JSON.stringify(stored)}; the model allows ${JSON.stringify(candidates)}`)
      seen(match === candidates[0] ? 'a timed-out change did not land' : 'a timed-out change landed late')
      sess.data = match as Data
    }
    if (this.maybeCreated.length > 0) {
      const known = new Set(this.sessions.map(s => s.key))
      for (const key of await keysUnder(this.admin, this.prefix)) {
        const storedId = key.slice(this.prefix.length)
        if (storedId.startsWith('user:') || known.has(storedId)) continue
        const text = await this.admin.get(key)
        if (text === null || text.startsWith('{"moved":')) continue
        const doc = JSON.parse(text) as { c: number, a: number, d: Data }
        const at = this.maybeCreated.findIndex(d => isDeepStrictEqual(d, doc.d))
        expect(at !== -1, `after a stall, an unknown session is stored: ${JSON.stringify(doc.d)}`)
        this.maybeCreated.splice(at, 1)
        // its id reached no client: the model knows it by its key only
        const sess = new Sess(undefined, storedId, doc.d, doc.c, doc.c)
        sess.idle = win(doc.c, resumed, TTL * 1000)
        this.sessions.push(sess)
        this.note(`  a timed-out first save landed late: ${JSON.stringify(doc.d)}`)
        seen('a timed-out first save landed late')
      }
      this.maybeCreated = []
    }
  }

  /** The invariants, after every step: what Redis holds, and what `list` shows. */
  async check (step: number): Promise<void> {
    const seen = new Set<string>()
    const aliases = new Map<string, { sess: Sess, alias: Alias }>()
    for (const sess of this.sessions) for (const alias of sess.aliases.values()) aliases.set(alias.key, { sess, alias })
    for (const key of await keysUnder(this.admin, this.prefix)) {
      const storedId = key.slice(this.prefix.length)
      if (storedId.startsWith('user:')) continue
      const t0 = Date.now()
      const [[, text], [, pttl]] = await this.admin.multi().get(key).pttl(key).exec() as [[null, string | null], [null, number]]
      const t1 = Date.now()
      if (text === null) continue
      if (text.startsWith('{"moved":')) {
        const found = aliases.get(storedId)
        if (found === undefined) fail(`an alias the model never made is stored (${storedId.slice(0, 8)})`)
        const until = Number(/"until":(\d+)/.exec(text)?.[1])
        expect(until >= found.alias.until.lo && until <= found.alias.until.hi, `an alias ends at ${until}, not within the grace window [${found.alias.until.lo}, ${found.alias.until.hi}]`)
        found.alias.until = { lo: until, hi: until }
        expect(t0 + pttl <= until + 1, `an alias key outlives its grace window by ${t0 + pttl - until} ms (until ${until})`)
        continue
      }
      const sess = this.live().find(s => s.key === storedId)
      if (sess === undefined) {
        const ended = this.sessions.find(s => s.key === storedId)
        fail(ended === undefined
          ? `a session the model does not know is stored: ${text}`
          : `an ended session is still stored: ${text} (model data ${JSON.stringify(ended.data)})`)
      }
      seen.add(storedId)
      const must = (ok: boolean, message: string): void => {
        if (!ok) fail(`session ${storedId.slice(0, 8)} ${JSON.stringify(sess.data)}: ${message} [idle ${sess.idle.lo}..${sess.idle.hi}, checked ${t0}..${t1}, pttl ${pttl}]`)
      }
      const doc = JSON.parse(text) as { a: number, c: number, u?: string, d: Data }
      must(isDeepStrictEqual(doc.d, sess.data), `stored ${JSON.stringify(doc.d)}, the model holds ${JSON.stringify(sess.data)}`)
      must(doc.u === sess.user, `stored under user ${String(doc.u)}, the model says ${String(sess.user)}`)
      must(doc.a >= sess.deadline.lo && doc.a <= sess.deadline.hi, `absolute deadline ${doc.a} outside [${sess.deadline.lo}, ${sess.deadline.hi}]`)
      sess.deadline = { lo: doc.a, hi: doc.a }
      must(doc.c >= sess.created.lo && doc.c <= sess.created.hi, `created at ${doc.c} outside [${sess.created.lo}, ${sess.created.hi}]`)
      sess.created = { lo: doc.c, hi: doc.c }
      must(pttl > 0, `a session key without a TTL (${pttl})`)
      must(t0 + pttl <= doc.a + 1, `a session key outlives its absolute deadline by ${t0 + pttl - doc.a} ms`)
      const latest = Math.min(sess.idle.hi, doc.a)
      const earliest = Math.min(sess.idle.lo, doc.a)
      must(t0 + pttl <= latest + 2, `a session key expires ${t0 + pttl - latest} ms after the latest idle expiry the model allows`)
      must(t1 + pttl >= earliest - 2, `a session key expires ${earliest - t1 - pttl} ms before its idle expiry`)
      sess.idle = { lo: Math.max(sess.idle.lo, t0 + pttl), hi: Math.min(sess.idle.hi, t1 + pttl) }
      if (sess.idle.lo > sess.idle.hi) sess.idle = { lo: t0 + pttl, hi: t1 + pttl }
    }
    for (const sess of this.live()) expect(seen.has(sess.key as string), `a live session's key is gone (model data ${JSON.stringify(sess.data)})`)
    const app = this.apps[step % 2]
    for (const user of USERS) {
      const listed = (await app.sessions.list(user)).map(s => s.idHint).sort()
      const expected = this.live().filter(s => s.user === user).map(s => (s.key as string).slice(0, 8)).sort()
      expect(isDeepStrictEqual(listed, expected), `list(${user}) shows [${listed.join(', ')}], the model holds [${expected.join(', ')}]`)
    }
  }
}

/** `data` once the change of `r`, an increment or a set, is applied. */
function changed (data: Data, r: Req): Data {
  return r.route === 'inc' ? { ...data, n: (typeof data.n === 'number' ? data.n : 0) + 1 } : { ...data, x: r.value }
}

/**
 * What a session holding `data` may hold once `reqs`, which timed out, land late: each or not, in
 * any order; an increment or a set after the session ended lands nowhere.
 */
function lateOutcomes (data: Data, reqs: Req[]): Array<Data | 'ended'> {
  const outcomes: Array<Data | 'ended'> = []
  const add = (o: Data | 'ended'): void => { if (!outcomes.some(known => isDeepStrictEqual(known, o))) outcomes.push(o) }
  const walk = (o: Data | 'ended', left: Req[]): void => {
    add(o)
    if (o === 'ended') return
    left.forEach((r, i) => {
      const rest = left.filter((_, j) => j !== i)
      walk(r.route === 'inc' || r.route === 'set' ? changed(o, r) : 'ended', rest)
      // or it never lands
      walk(o, rest)
    })
  }
  walk(data, reqs)
  return outcomes
}

/** The session cookie a response set or cleared, if any. */
function sent (res: LightMyRequestResponse): { value: string } | undefined {
  const cookies = res.cookies.filter(c => c.name === 'sid')
  expect(cookies.length <= 1, `${cookies.length} session cookies in one response`)
  return cookies[0]
}

function describe (r: Req): string {
  const args = r.route === 'set'
    ? `${r.same === true ? 'the same value, ' : ''}${JSON.stringify(r.value)}`
    : r.route === 'login' ? `${r.user}${r.keep === undefined ? '' : ', keep ' + JSON.stringify(r.keep)}` : r.route === 'regenerate' ? JSON.stringify(r.keep ?? null) : ''
  return `${r.route}(${args}) on app ${r.app} as jar ${r.jar}${r.stale === undefined ? '' : ` with old cookie #${r.stale}`}`
}

// ---- commands ----

type Cmd = fc.AsyncCommand<World, World>

let executed = 0

abstract class Step implements Cmd {
  check (): boolean { return true }
  async run (world: World): Promise<void> {
    executed++
    world.note(this.toString())
    await world.heard()
    await this.act(world)
    await world.check(world.log.length)
  }

  abstract act (world: World): Promise<void>
  abstract toString (): string
}

class Request extends Step {
  constructor (readonly r: Req) { super() }
  act (world: World): Promise<void> { return world.request(this.r) }
  toString (): string { return describe(this.r) }
}

/** The same read sent again and again on one app: with the cache, the third is most likely answered from it. */
class Reads extends Step {
  constructor (readonly r: Req, readonly times: number) { super() }
  async act (world: World): Promise<void> {
    for (let i = 0; i < this.times; i++) await world.request(this.r)
  }

  toString (): string { return `${describe(this.r)}, ${this.times} times` }
}

class DestroyAll extends Step {
  constructor (readonly app: number, readonly user: string) { super() }
  act (world: World): Promise<void> { return world.destroyAll(this.app, this.user) }
  toString (): string { return `app ${this.app}: sessions.destroyAll(${this.user})` }
}

type Span = 'short' | 'rotation' | 'grace' | 'idle' | 'absolute'
const SPANS: Record<Span, number> = { short: 10_000, rotation: ROTATE_EVERY * 1000, grace: 0, idle: TTL * 1000, absolute: ABSOLUTE_TTL * 500 }

class TimePasses extends Step {
  constructor (readonly span: Span, readonly extra: number) { super() }
  async act (world: World): Promise<void> {
    const ms = await world.pass((this.span === 'grace' ? world.grace * 1000 : SPANS[this.span]) + this.extra)
    world.note(`  ${ms} ms passed`)
  }

  toString (): string { return `time passes: ${this.span} + ${this.extra} ms` }
}

class StallBefore extends Step {
  constructor (readonly reqs: Req[]) { super() }
  act (world: World): Promise<void> { return world.stallBefore(this.reqs) }
  toString (): string { return `Redis stalls, meanwhile: ${this.reqs.map(describe).join('; ')}` }
}

class RaceDestroyAll extends Step {
  constructor (readonly app: number, readonly user: string, readonly y: Req) { super() }
  act (world: World): Promise<void> { return world.raceDestroyAll(this.app, this.user, this.y) }
  toString (): string { return `at once: app ${this.app}: sessions.destroyAll(${this.user}) and ${describe(this.y)}` }
}

class Race extends Step {
  constructor (readonly x: Req, readonly y: Req) { super() }
  act (world: World): Promise<void> { return world.race(this.x, this.y) }
  toString (): string { return `at once: ${describe(this.x)} and ${describe(this.y)}` }
}

class StallDuring extends Step {
  constructor (readonly r: Req) { super() }
  act (world: World): Promise<void> { return world.stallDuring(this.r) }
  toString (): string { return `Redis stalls during: ${describe(this.r)}` }
}

const app = fc.integer({ min: 0, max: 1 })
const jar = fc.integer({ min: 0, max: JARS - 1 })
// mostly the jar's own cookie; now and then one from history (a stolen, older or ended one)
const stale = fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.nat({ max: 1000 })) })
const user = fc.constantFrom(...USERS)
const keep = fc.option(fc.subarray([...KEEPABLE]), { freq: 3, nil: undefined })
const value = fc.oneof(fc.integer({ min: -5, max: 5 }), fc.string({ maxLength: 4 }))
// now and then the value the session already holds: no change, so nothing to save, even while Redis is stopped
const same = fc.oneof({ weight: 3, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) })

function req (route: Route, withStale = true): fc.Arbitrary<Req> {
  return fc.record({ app, jar, stale: withStale ? stale : fc.constant(undefined), value, same, user, keep }).map(r => {
    const out: Req = { app: r.app, jar: r.jar, route, stale: r.stale }
    if (route === 'set') out.value = r.value
    if (route === 'set' && r.same) out.same = true
    if (route === 'login') out.user = r.user
    if (route === 'login' || route === 'regenerate') out.keep = r.keep
    return out
  })
}

const ROUTES: Route[] = ['read', 'inc', 'set', 'login', 'regenerate', 'destroy']
const anyReq = (withStale: boolean): fc.Arbitrary<Req> => fc.constantFrom(...ROUTES).chain(route => req(route, withStale))

const race = fc.tuple(fc.constantFrom<Route>('inc', 'inc', 'destroy', 'login', 'regenerate').chain(route => req(route, false)), fc.boolean())
  .map(([x, fresh]) => new Race(x, { app: 1 - x.app, jar: fresh ? (x.jar + 1) % JARS : x.jar, route: 'inc' }))

const commands: Array<fc.Arbitrary<Cmd>> = [
  req('read').map(r => new Request(r)),
  req('read').map(r => new Request(r)),
  req('read').map(r => new Reads(r, 3)),
  req('read', false).map(r => new Reads(r, 3)),
  req('inc').map(r => new Request(r)),
  req('inc').map(r => new Request(r)),
  req('set').map(r => new Request(r)),
  req('login').map(r => new Request(r)),
  req('login').map(r => new Request(r)),
  req('regenerate').map(r => new Request(r)),
  req('destroy').map(r => new Request(r)),
  fc.tuple(app, user).map(([a, u]) => new DestroyAll(a, u)),
  fc.tuple(fc.constantFrom<Span>('short', 'rotation', 'grace', 'idle', 'absolute'), fc.integer({ min: 0, max: 60_000 })).map(([s, e]) => new TimePasses(s, e)),
  fc.tuple(fc.constantFrom<Span>('rotation', 'absolute'), fc.integer({ min: 0, max: 60_000 })).map(([s, e]) => new TimePasses(s, e)),
  fc.tuple(fc.constantFrom<Span>('rotation', 'grace'), fc.integer({ min: 0, max: 60_000 })).map(([s, e]) => new TimePasses(s, e)),
  fc.array(anyReq(true), { minLength: 1, maxLength: 3 }).map(reqs => new StallBefore(reqs)),
  anyReq(false).map(r => new StallDuring(r)),
  race,
  race,
  fc.tuple(app, user, jar).map(([a, u, j]) => new RaceDestroyAll(a, u, { app: 1 - a, jar: j, route: 'inc' }))
]

/** A fixed sequence touching every command the plugin sends, itself checked like any run. */
async function warmUp (server: RedisServer, admin: Redis): Promise<void> {
  const world = await World.create(server, admin, ROTATE_GRACES[0])
  try {
    const steps: Step[] = [
      new Request({ app: 0, jar: 0, route: 'login', user: 'u1' }),
      new Request({ app: 1, jar: 0, route: 'inc' }),
      new TimePasses('rotation', 0),
      new Request({ app: 0, jar: 0, route: 'read' }),
      new Request({ app: 1, jar: 0, route: 'regenerate', keep: ['uid', 'n'] }),
      new DestroyAll(1, 'u1')
    ]
    // acted, not checked: this only loads the scripts
    for (const step of steps) await step.act(world)
  } finally {
    await world.close()
  }
}

function envInt (name: string): number | undefined {
  const raw = process.env[name]
  return raw === undefined || raw === '' ? undefined : Number(raw)
}

test('two app instances sharing one Redis keep every promise the model holds them to', async (t) => {
  const server = await startRedis()
  const admin = new Redis(server.url, { maxRetriesPerRequest: 1 })
  t.teardown(async () => {
    admin.disconnect()
    await server.kill()
  })
  // every script the plugin runs is loaded before any stall, so no NOSCRIPT reply arrives late
  await warmUp(server, admin)

  const seed = envInt('MODEL_SEED') ?? (Date.now() ^ (Math.random() * 0x100000000)) | 0
  const path = process.env.MODEL_PATH
  const replayPath = process.env.MODEL_REPLAY
  const started = Date.now()
  /** The steps of the latest run that failed: once shrinking ends, those of the counterexample. */
  let failure: { log: string[], error: string } | undefined
  const details = await fc.check(fc.asyncProperty(fc.constantFrom(...ROTATE_GRACES), fc.boolean(), fc.commands(commands, { maxCommands: MAX_COMMANDS, size: 'max', ...(replayPath === undefined ? {} : { replayPath }) }), async (grace, cache, cmds) => {
    const world = await World.create(server, admin, grace, cache)
    world.note(`rotateGrace ${grace}, cache ${cache ? 'on' : 'off'}`)
    seen(cache ? 'runs with the cache' : 'runs without the cache')
    try {
      await fc.asyncModelRun(() => ({ model: world, real: world }), cmds)
    } catch (err) {
      failure = { log: world.log, error: (err as Error).message }
      throw err
    } finally {
      await world.close()
    }
  }), { seed, numRuns: NUM_RUNS, interruptAfterTimeLimit: TIME_LIMIT, ...(path === undefined ? {} : { path }) })

  t.comment(`explored: ${[...tally].map(([what, n]) => `${what} ${n}`).join(', ')}`)
  t.comment(`model: seed ${seed}, ${details.numRuns} runs, ${details.numShrinks} shrinks, ${executed} commands in ${Date.now() - started} ms${details.interrupted ? ' (time limit reached)' : ''}`)
  if (details.failed && failure !== undefined) {
    const replay = /replayPath="([^"]*)"/.exec(String(details.counterexample?.[2]))?.[1]
    t.comment(`replay: MODEL_SEED=${details.seed} MODEL_PATH=${details.counterexamplePath ?? ''}${replay === undefined ? '' : ` MODEL_REPLAY=${replay}`} npx tap --disable-coverage test/model.test.ts`)
    t.comment(`counterexample, step by step:\n${failure.log.join('\n')}\n=> ${failure.error}`)
  }
  t.notOk(details.failed, details.failed ? `${failure?.error ?? ''}\n${fc.defaultReportMessage(details) ?? ''}` : 'every step kept every promise')
  t.ok(details.numRuns > 0, 'at least one run completed')
})
