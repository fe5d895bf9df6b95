// The types of redis-server.js, for the TypeScript tests.

/** A port nothing listens on at the moment, on 127.0.0.1. */
export function freePort (): Promise<number>

/** True when something on 127.0.0.1:`port` answers PING with PONG within half a second. */
export function answersPing (port: number): Promise<boolean>

export interface WaitOptions {
  /** ms before giving up (default 15 s) */
  timeout?: number
  /** ms between two checks (default 50) */
  interval?: number
  /** checks at most (default: as many as `timeout` leaves room for) */
  tries?: number
}

/**
 * Calls `check` until it returns true, at most `tries` times and for at most `timeout` ms; throws
 * naming `what` when it never does. An error `check` throws ends the wait at once.
 */
export function waitFor (what: string, check: () => boolean | Promise<boolean>, options?: WaitOptions): Promise<void>

export interface RedisServerOptions {
  /** default: a free one */
  port?: number
  /** more redis-server arguments, after the defaults */
  args?: string[]
  /** a config file, read first (a sentinel's, which it rewrites: its own and writable) */
  config?: string
  /** runs it as a sentinel, from `config` */
  sentinel?: boolean
  /** a program that runs redis-server (taskset, valgrind) */
  wrapper?: string[]
  /** ms to wait for its first PONG (default 10 s, 60 s under a wrapper) */
  startTimeout?: number
  /** its own process group: a Ctrl-C in the terminal reaches only the parent, which stops it in order */
  detached?: boolean
}

/** A private redis-server on a loopback port, which its owner may pause, kill or restart. */
export interface RedisServer {
  readonly port: number
  readonly url: string
  /** The process id of the server running now. */
  pid (): number | undefined
  /** SIGSTOP: the server stops answering but keeps its connections open. */
  pause (): void
  /** SIGCONT */
  resume (): void
  /** SIGKILL: no goodbye to clients. */
  kill (): Promise<void>
  /** Kills it and starts it again on the same port (empty: nothing is persisted). */
  restart (): Promise<void>
  /** SIGTERM, and waits for the exit. */
  stop (): Promise<void>
}

/**
 * Starts a redis-server and resolves once it answers PING. It never keeps the parent alive and is
 * killed when the parent exits; a start that fails (no redis-server on PATH: `code` ENOENT) throws.
 */
export function startRedisServer (options?: RedisServerOptions): Promise<RedisServer>
