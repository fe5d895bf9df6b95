// Prometheus metrics for the sessions of one app, with prom-client: the plugin's counters
// (`app.sessions.stats()`, read at each scrape) and its lifecycle events (diagnostics_channel).
//
//   import { sessionMetrics } from './metrics.js'
//   await app.register(redisSession, { client, secret })
//   sessionMetrics(app)          // GET /metrics, in Prometheus' text format
//
// diagnostics_channel is per process: with several apps using the plugin in one process, the
// event metrics count all of them. Type-checked by `npx tsc -p examples`; tested by
// test/metrics-example.test.ts.
import diagnostics from 'node:diagnostics_channel'
import type { FastifyInstance } from 'fastify'
import { Counter, Histogram, Registry } from 'prom-client'
import { channels, type SessionExpiredEvent, type SessionLoadEvent, type SessionSaveEvent } from 'fastify-session-redis'

const eventNames = Object.keys(channels) as Array<keyof typeof channels>

export function sessionMetrics (app: FastifyInstance, registry = new Registry(), path = '/metrics'): Registry {
  registry.registerMetric(new Counter({
    name: 'session_stats_total',
    help: 'The plugin\'s own counters since it started (app.sessions.stats()), by kind',
    labelNames: ['kind'],
    registers: [],
    collect () {
      this.reset()
      // every counter the plugin keeps, so one added in a later version is reported too
      for (const [kind, value] of Object.entries(app.sessions.stats())) this.inc({ kind }, value)
    }
  }))
  const events = new Counter({ name: 'session_events_total', help: 'Session lifecycle events, by event', labelNames: ['event'], registers: [registry] })
  // from half a millisecond (a pipelined read) to the default 2 s timeout
  const SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2]
  const loads = new Histogram({
    name: 'session_load_duration_seconds',
    help: 'Loads of a session a cookie named, by outcome',
    labelNames: ['outcome'],
    buckets: SECONDS,
    registers: [registry]
  })
  const saves = new Histogram({
    name: 'session_save_duration_seconds',
    help: 'Saves, by outcome (saved, or the error code)',
    labelNames: ['outcome'],
    buckets: SECONDS,
    registers: [registry]
  })
  const sizes = new Histogram({ name: 'session_saved_bytes', help: 'Size of the documents written', buckets: [256, 1024, 4096, 16384, 65536], registers: [registry] })
  const expired = new Counter({ name: 'session_expired_total', help: 'Cookies naming a session that was gone or past its deadline, by reason', labelNames: ['reason'], registers: [registry] })

  const listeners: Array<[string, (message: unknown) => void]> = eventNames.map((event) => [channels[event], () => { events.inc({ event }) }])
  listeners.push([channels.load, (message) => {
    const { outcome, durationMs } = message as SessionLoadEvent
    loads.observe({ outcome }, durationMs / 1000)
  }])
  listeners.push([channels.save, (message) => {
    const { outcome, code, bytes, durationMs } = message as SessionSaveEvent
    saves.observe({ outcome: code ?? outcome }, durationMs / 1000)
    if (outcome === 'saved') sizes.observe(bytes)
  }])
  listeners.push([channels.expired, (message) => { expired.inc({ reason: (message as SessionExpiredEvent).reason }) }])
  for (const [name, listener] of listeners) diagnostics.subscribe(name, listener)
  app.addHook('onClose', async function stopSessionMetrics () {
    for (const [name, listener] of listeners) diagnostics.unsubscribe(name, listener)
  })

  app.get(path, { config: { session: false } }, async (_request, reply) => {
    reply.type(registry.contentType)
    return registry.metrics()
  })
  return registry
}
