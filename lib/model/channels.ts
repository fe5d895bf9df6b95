import diagnostics from 'node:diagnostics_channel'
import type {
  SessionCacheEvent, SessionConflictEvent, SessionCreateEvent, SessionDestroyEvent, SessionExpiredEvent, SessionLoadEvent,
  SessionRegenerateEvent, SessionSaveEvent
} from '../../types/index.js'

/** The channel names (docs/events-and-metrics.md), exported as `channels`. */
export const channelNames = Object.freeze({
  load: 'fastify-session-redis:load',
  save: 'fastify-session-redis:save',
  conflict: 'fastify-session-redis:conflict',
  create: 'fastify-session-redis:create',
  destroy: 'fastify-session-redis:destroy',
  regenerate: 'fastify-session-redis:regenerate',
  expired: 'fastify-session-redis:expired',
  cache: 'fastify-session-redis:cache'
} as const)

interface Typed<M> extends diagnostics.Channel {
  publish (message: M): void
}

/**
 * Every publisher checks `hasSubscribers` first: with nobody listening, no message is built and no
 * clock is read. Messages carry hints (an id's first 8 characters, sizes, versions, durations),
 * never an id or session data.
 */
export const channels = {
  load: diagnostics.channel(channelNames.load) as Typed<SessionLoadEvent>,
  save: diagnostics.channel(channelNames.save) as Typed<SessionSaveEvent>,
  conflict: diagnostics.channel(channelNames.conflict) as Typed<SessionConflictEvent>,
  create: diagnostics.channel(channelNames.create) as Typed<SessionCreateEvent>,
  destroy: diagnostics.channel(channelNames.destroy) as Typed<SessionDestroyEvent>,
  regenerate: diagnostics.channel(channelNames.regenerate) as Typed<SessionRegenerateEvent>,
  expired: diagnostics.channel(channelNames.expired) as Typed<SessionExpiredEvent>,
  cache: diagnostics.channel(channelNames.cache) as Typed<SessionCacheEvent>
}

/**
 * As much of a stored id (`storedIdOf` in lib/model/ids.ts: the id's hash with `hashIds`) as an event
 * may carry, or `app.sessions.list` and `app.sessions.idHint` show: enough to tell sessions apart,
 * too few to use one. Every caller passes a stored id, never the id a cookie carries.
 */
export function hintOf (id: string): string {
  return id.slice(0, 8)
}

/** A session now stored as `storedId` was regenerated, from `previous` when that was stored. */
export function regenerateEvent (storedId: string, previous: string | undefined, kept: number): SessionRegenerateEvent {
  const event: SessionRegenerateEvent = { idHint: hintOf(storedId), kept }
  if (previous !== undefined) event.previousHint = hintOf(previous)
  return event
}
