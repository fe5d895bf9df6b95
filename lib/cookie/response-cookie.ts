import type { FastifyReply } from 'fastify'
import type { SessionCookieOptions, SessionOrigin } from '../../types/index.js'
import type { SessionCookie } from './signed-cookie.js'
import type { SessionDocument } from '../model/document.js'
import { cookieOverrides, type CookieSettings } from '../model/settings.js'
import { secondsLeft } from '../model/expiry.js'

/** The session a response speaks of; `id` is read only when it is sent (a fresh session mints it then). */
export interface Subject {
  readonly id: string
  /** When the session expires, epoch ms. */
  readonly expiresAt: number
}

/** What the end of a request tells the client of its session: the (new) id, that it ended, or nothing. */
export class ResponseCookie {
  /** Send the session's current id (Set-Cookie, or the id header). */
  send = false
  /** The client holds the id of a session this request destroyed or regenerated. */
  clear = false
  /** Cookie attributes set by `session.options()` for this response. */
  #overrides: Partial<CookieSettings> | undefined

  /** Takes `session.options()`; false when they name no cookie attribute. */
  override (options: SessionCookieOptions & Record<string, unknown>): boolean {
    const overrides = cookieOverrides(options)
    if (overrides === undefined) return false
    this.#overrides = { ...this.#overrides, ...overrides }
    return true
  }

  /** Sets or clears the cookie on `reply`, when the response must. */
  write (cookie: SessionCookie, origin: SessionOrigin, reply: FastifyReply, session: Subject, doc: SessionDocument): void {
    if (this.send) cookie.write(origin, reply, session.id, secondsLeft(doc, Date.now()), persistFor(session, doc), this.#overrides)
    else if (this.clear) cookie.clear(origin, reply)
  }

  /** What `write` would send, as a Set-Cookie header value. */
  header (cookie: SessionCookie, origin: SessionOrigin, session: Subject, doc: SessionDocument): string | undefined {
    if (this.send) return cookie.header(origin, session.id, secondsLeft(doc, Date.now()), persistFor(session, doc), this.#overrides)
    return this.clear ? cookie.clearHeader(origin) : undefined
  }
}

/** A remembered session's cookie lives as long as the session would if the client went quiet now. */
function persistFor (session: Subject, doc: SessionDocument): number | undefined {
  return doc.p === 1 ? Math.ceil((session.expiresAt - Date.now()) / 1000) : undefined
}
