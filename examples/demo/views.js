// HTML for the demo pages. Every value that reaches a page goes through escapeHtml.

const ENTITIES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

export function escapeHtml (value) {
  return String(value).replace(/[&<>"']/g, (c) => ENTITIES[c])
}

/** Idle time-to-live choices, in seconds. */
export const TTL_CHOICES = [
  { seconds: 15, label: '15 s' },
  { seconds: 60, label: '1 min' },
  { seconds: 1800, label: '30 min' }
]

export function ttlLabel (seconds) {
  return TTL_CHOICES.find(choice => choice.seconds === seconds)?.label ?? `${seconds} s`
}

function flashList (flashes) {
  const items = Object.entries(flashes).flatMap(([type, messages]) =>
    messages.map(message => `<p class="flash flash-${escapeHtml(type)}" role="status">${escapeHtml(message)}</p>`))
  return items.join('\n')
}

function layout ({ title, user, flashes = {}, body }) {
  const nav = user === undefined
    ? '<a href="/login">Log in</a>'
    : `<a href="/">Home</a> <a href="/members">Members</a>
      <form method="post" action="/logout" class="inline"><button type="submit" class="link">Log out</button></form>`
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · fastify-session-redis demo</title>
<link rel="stylesheet" href="/style.css">
</head>
<body>
<header>
  <span class="brand">fastify-session-redis <small>demo</small></span>
  <nav>${nav}</nav>
</header>
<main>
${flashList(flashes)}
${body}
</main>
</body>
</html>
`
}

export function loginPage ({ flashes }) {
  return layout({
    title: 'Log in',
    flashes,
    body: `<section class="card">
  <h1>Log in</h1>
  <p>Any name will do: there is no password here. Logging in gives the browser a new session id
  (<code>session.regenerate()</code>) and stores the name in Redis.</p>
  <form method="post" action="/login" class="stack">
    <label for="username">Username</label>
    <input id="username" name="username" autocomplete="username" maxlength="40" required autofocus>
    <button type="submit">Log in</button>
  </form>
</section>`
  })
}

function formatTime (ms) {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC')
}

export function homePage ({ user, flashes, views, createdAt, expiresAt, ttl, key, stored, liveSessions }) {
  const ttlButtons = TTL_CHOICES.map(({ seconds, label }) =>
    `<button type="submit" name="ttl" value="${seconds}" class="choice"${seconds === ttl ? ' aria-pressed="true"' : ''}>${escapeHtml(label)}</button>`
  ).join('\n      ')
  // liveSessions is known only when the plugin indexes sessions by user, which "log out everywhere" needs
  const everywhere = liveSessions === undefined
    ? ''
    : '<form method="post" action="/logout-everywhere"><button type="submit" class="danger">Log out everywhere</button></form>'
  const sessionCount = liveSessions === undefined
    ? ''
    : `<dt>Your sessions</dt><dd id="sessions">${escapeHtml(liveSessions)}, one per browser logged in as you</dd>`
  // shortened for the page only: the key holds a hash of the id, not the id the cookie carries
  const shortKey = `${key.slice(0, -35)}…`
  return layout({
    title: 'Home',
    user,
    flashes,
    body: `<section class="card">
  <h1>Hello, <span id="user">${escapeHtml(user)}</span></h1>
  <dl class="facts">
    <dt>Page views</dt><dd id="views">${escapeHtml(views)}</dd>
    <dt>Created at</dt><dd id="created">${escapeHtml(formatTime(createdAt))}</dd>
    <dt>Expires at</dt><dd><span id="expires">${escapeHtml(formatTime(expiresAt))}</span>
      <span id="countdown" data-expires="${escapeHtml(expiresAt)}"></span></dd>
    <dt>Idle timeout</dt><dd id="ttl">${escapeHtml(ttlLabel(ttl))}, sliding: every request starts it again</dd>
    ${sessionCount}
  </dl>
</section>
<section class="card">
  <h2>Idle timeout of this session</h2>
  <form method="post" action="/ttl" class="row">
      ${ttlButtons}
  </form>
  <p class="hint">Pick 15 s, wait without touching the page, then reload: Redis has dropped the session.</p>
</section>
<section class="card">
  <h2>As Redis holds it</h2>
  <p class="hint"><code>GET ${escapeHtml(shortKey)}</code></p>
  <pre id="stored">${escapeHtml(stored ?? '(nothing)')}</pre>
</section>
<section class="card">
  <h2>Log out</h2>
  <div class="row">
    <form method="post" action="/logout"><button type="submit">Log out</button></form>
    ${everywhere}
  </div>
  <p class="hint"><code>session.destroy()</code> deletes the document from Redis at once; the cookie goes with it.</p>
</section>
<script>
// the countdown only reads the clock: it sends no request, so it never extends the session
const el = document.getElementById('countdown')
const expires = Number(el.dataset.expires)
function tick () {
  const left = Math.round((expires - Date.now()) / 1000)
  const minutes = Math.floor(left / 60)
  el.textContent = left <= 0 ? '(expired: reload to see)' : '(in ' + (minutes > 0 ? minutes + ' min ' : '') + (left % 60) + ' s)'
  if (left > 0) setTimeout(tick, 1000)
}
tick()
</script>`
  })
}

export function membersPage ({ user, flashes }) {
  return layout({
    title: 'Members',
    user,
    flashes,
    body: `<section class="card">
  <h1>Members only</h1>
  <p>Only a logged-in session reaches this page: the route's <code>requireSession</code> preHandler
  sends everyone else to the login page.</p>
  <p>You are <strong id="member">${escapeHtml(user)}</strong>.</p>
</section>`
  })
}

export function errorPage ({ statusCode, message }) {
  return layout({
    title: `Error ${statusCode}`,
    body: `<section class="card">
  <h1>Error ${escapeHtml(statusCode)}</h1>
  <p>${escapeHtml(message)}</p>
  <p><a href="/">Back home</a></p>
</section>`
  })
}
