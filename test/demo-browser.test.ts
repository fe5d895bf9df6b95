import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { test } from 'tap'
import { chromium, type Browser, type Page } from 'playwright-core'
import { Redis } from 'ioredis'
import { startRedis } from './helpers/redis-server.js'
import { sessionKey } from './helpers/app.js'
import { findChromium, startDemo, type DemoProcess } from './helpers/demo.js'

const chromiumPath = findChromium()
// README's picture is refreshed on purpose only (`npm run demo:screenshot`); other runs leave the tree alone
const screenshotTo = process.env.DEMO_SCREENSHOT === undefined || process.env.DEMO_SCREENSHOT === ''
  ? undefined
  : resolve(process.env.DEMO_SCREENSHOT)
const PREFIX = 'demo:sess:'
const INJECTION = '<script>alert(1)</script>'
const EXPIRED = 'Your session has expired: Redis dropped it after its idle timeout (or it was logged out elsewhere). Please log in again.'

const skip = chromiumPath === undefined
  ? 'no Chromium: install the Debian package chromium (CI does), or point CHROMIUM_PATH at a Chromium binary'
  : false

/** The path the page ended up on (after redirects) and the flash messages it shows. */
async function shown (page: Page): Promise<{ path: string, flashes: string[] }> {
  return { path: new URL(page.url()).pathname, flashes: await page.locator('.flash').allTextContents() }
}

async function logIn (page: Page, url: string, username: string): Promise<void> {
  await page.goto(`${url}/login`)
  await page.fill('#username', username)
  await Promise.all([page.waitForURL(`${url}/`), page.click('form.stack button[type=submit]')])
}

async function sessionId (page: Page): Promise<string> {
  const cookie = (await page.context().cookies()).find(c => c.name === 'sid')
  if (cookie === undefined) throw new Error('the browser holds no sid cookie')
  // the cookie value is `<id>.<signature>`; the signature (base64) may itself contain no dot
  return decodeURIComponent(cookie.value).split('.')[0]
}

test('the demo app in a real browser', { skip }, async (t) => {
  const redisServer = await startRedis()
  const redis = new Redis(redisServer.url, { maxRetriesPerRequest: 1 })
  const open: { demo?: DemoProcess, browser?: Browser } = {}
  const scratch = await mkdtemp(join(tmpdir(), 'demo-browser-'))
  const screenshot = screenshotTo ?? join(scratch, 'demo.png')
  t.teardown(async () => {
    // in this order, each one even when an earlier one failed: nothing outlives the test
    const steps = [() => open.browser?.close(), () => open.demo?.stop(), () => redis.disconnect(), () => redisServer.stop(),
      () => rm(scratch, { recursive: true, force: true })]
    const failures: unknown[] = []
    for (const step of steps) {
      try {
        await step()
      } catch (err) {
        failures.push(err)
      }
    }
    if (failures.length > 0) throw failures[0]
  })

  const demo = open.demo = await startDemo({ redisUrl: redisServer.url })
  const browser = open.browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync']
  })
  const context = await browser.newContext({ viewport: { width: 900, height: 700 } })
  const page = await context.newPage()
  const dialogs: string[] = []
  page.on('dialog', (dialog) => {
    dialogs.push(dialog.message())
    dialog.dismiss().catch(() => {})
  })
  const { url } = demo

  await t.test('logged out, the protected page redirects to the login page', async (t) => {
    await page.goto(`${url}/members`)
    t.same(await shown(page), { path: '/login', flashes: ['Log in to see the members page.'] })
  })

  await t.test('login greets the user once, and the counter counts every reload', async (t) => {
    await logIn(page, url, 'Ada')
    t.equal(await page.textContent('#user'), 'Ada')
    t.same(await shown(page), { path: '/', flashes: ['Welcome, Ada'] })
    t.equal(await page.textContent('#views'), '1')
    await page.waitForFunction("/^\\(in (\\d+ min )?\\d+ s\\)$/.test(document.getElementById('countdown').textContent)")
    await mkdir(dirname(screenshot), { recursive: true })
    await page.screenshot({ path: screenshot, fullPage: true })
    t.ok((await stat(screenshot)).size > 0, 'the screenshot is written')

    await page.reload()
    t.same((await shown(page)).flashes, [], 'the flash is gone after one showing')
    t.equal(await page.textContent('#views'), '2')
    await page.reload()
    t.equal(await page.textContent('#views'), '3')
  })

  await t.test('the page shows the document exactly as Redis holds it', async (t) => {
    const stored = await redis.get(sessionKey(PREFIX, await sessionId(page)))
    t.ok(stored)
    t.equal(await page.textContent('#stored'), stored)
    t.match(JSON.parse(stored!), { d: { user: 'Ada', views: 3 } })
  })

  await t.test('the session cookie is HttpOnly and SameSite=Lax', async (t) => {
    const cookies = (await context.cookies()).filter(c => c.name === 'sid')
    t.equal(cookies.length, 1)
    t.equal(cookies[0].httpOnly, true)
    t.equal(cookies[0].sameSite, 'Lax')
    t.notMatch(await page.evaluate('document.cookie'), /sid=/, 'scripts on the page cannot read it')
  })

  await t.test('a logged-in session reaches the protected page', async (t) => {
    await page.goto(`${url}/members`)
    t.same(await shown(page), { path: '/members', flashes: [] })
    t.equal(await page.textContent('#member'), 'Ada')
  })

  await t.test('a 15 s idle timeout really expires, and the login page says why', async (t) => {
    await page.goto(`${url}/`)
    await Promise.all([page.waitForURL(`${url}/`), page.click('button[name=ttl][value="15"]')])
    t.same(await shown(page), { path: '/', flashes: ['This session now expires after 15 s without a request.'] })
    t.match(await page.textContent('#ttl'), /^15 s/)
    const id = await sessionId(page)
    const pttl = await redis.pttl(sessionKey(PREFIX, id))
    t.ok(pttl > 10_000 && pttl <= 15_000, `Redis holds it for at most 15 s (PTTL ${pttl})`)

    // the countdown is inline JavaScript that sends nothing, so the page may stay open meanwhile
    const expiresAt = Number(await page.getAttribute('#countdown', 'data-expires'))
    const wait = Math.min(Math.max(expiresAt - Date.now() + 1000, 16_000), 20_000)
    await page.waitForTimeout(wait)
    t.equal(await page.textContent('#countdown'), '(expired: reload to see)')
    t.equal(await redis.exists(sessionKey(PREFIX, id)), 0, 'Redis dropped it by itself')

    await page.reload()
    t.same(await shown(page), { path: '/login', flashes: [EXPIRED] })
    await page.reload()
    t.same(await shown(page), { path: '/login', flashes: [] }, 'the explanation shows once')
    await page.goto(`${url}/`)
    t.same(await shown(page), { path: '/login', flashes: [] }, 'the expired session is not logged in')
  })

  await t.test('logout destroys the session and says so', async (t) => {
    await logIn(page, url, 'Bob')
    const id = await sessionId(page)
    t.equal(await redis.exists(sessionKey(PREFIX, id)), 1)
    await Promise.all([page.waitForURL(`${url}/login`), page.click('main form[action="/logout"] button')])
    t.same(await shown(page), { path: '/login', flashes: ['You are logged out.'] })
    t.equal(await redis.exists(sessionKey(PREFIX, id)), 0, 'the old session is gone from Redis')
    t.not(await sessionId(page), id, 'the browser holds another id')
    await page.goto(`${url}/members`)
    t.same(await shown(page), { path: '/login', flashes: ['Log in to see the members page.'] })
  })

  await t.test('"Log out everywhere" ends every session of the user, where the plugin indexes sessions by user', async (t) => {
    const other = await browser.newContext()
    t.teardown(() => other.close())
    const otherPage = await other.newPage()
    await logIn(otherPage, url, 'Eve')
    await logIn(page, url, 'Eve')
    const button = page.locator('form[action="/logout-everywhere"] button')
    if (await button.count() === 0) {
      // a plugin without the per-user index: the button is hidden, and the route does not exist
      t.equal(await page.locator('#sessions').count(), 0)
      t.equal((await page.request.post(`${url}/logout-everywhere`)).status(), 404)
      return
    }
    t.match(await page.textContent('#sessions'), /^2,/)
    const ids = [await sessionId(page), await sessionId(otherPage)]
    await Promise.all([page.waitForURL(`${url}/login`), button.click()])
    t.same(await shown(page), { path: '/login', flashes: ['You are logged out on every device.'] })
    for (const id of ids) t.equal(await redis.exists(sessionKey(PREFIX, id)), 0, 'both sessions are gone from Redis')
    await otherPage.goto(`${url}/`)
    t.same(await shown(otherPage), { path: '/login', flashes: [EXPIRED] }, 'the other browser is logged out too')
  })

  await t.test('a username made of HTML renders as text', async (t) => {
    await logIn(page, url, INJECTION)
    t.equal(await page.textContent('#user'), INJECTION)
    t.same(await shown(page), { path: '/', flashes: [`Welcome, ${INJECTION}`] })
    t.match(await page.innerHTML('#user'), '&lt;script&gt;')
    t.equal(await page.locator('main script').count(), 1, 'only the countdown script is on the page')
    t.same(dialogs, [], 'no dialog ever opened')
  })

  await t.test('/health follows Redis, and SIGINT shuts the demo down cleanly', async (t) => {
    const healthy = await fetch(`${url}/health`)
    t.equal(healthy.status, 200)
    t.same(await healthy.json(), { status: 'ok' })
    redis.disconnect()
    await redisServer.kill()
    const down = await fetch(`${url}/health`)
    t.equal(down.status, 503)
    t.equal(await demo.stop('SIGINT'), 0, 'exits with 0', { output: demo.output() })
    t.match(demo.output(), /SIGINT: shutting down/)
  })
})
