/** A command waiting for its reply, and what to do if the reply does not come in time. */
export interface Deadline {
  at: number
  expire (): void
}

/**
 * The timeouts of the commands in flight, watched by one shared timer instead of a setTimeout
 * per command. Under load that is a few wake-ups a second rather than a timer armed and cleared
 * for every command. A command expires between `ms` and `ms` + `tick` after it was sent.
 */
export class Deadlines {
  readonly #tick: number
  readonly #ms: number
  // insertion order is deadline order: every entry waits the same `ms` on a monotonic clock
  readonly #pending = new Set<Deadline>()
  #timer: NodeJS.Timeout | undefined

  constructor (ms: number) {
    this.#ms = ms
    this.#tick = Math.min(50, Math.ceil(ms / 20))
  }

  add (expire: () => void): Deadline {
    const deadline: Deadline = { at: performance.now() + this.#ms, expire }
    this.#pending.add(deadline)
    this.#timer ??= setInterval(() => { this.#sweep() }, this.#tick)
    return deadline
  }

  /** Stops watching `deadline`; false when it has already expired, so the reply came too late. */
  settle (deadline: Deadline): boolean {
    return this.#pending.delete(deadline)
  }

  #sweep (): void {
    const now = performance.now()
    for (const deadline of this.#pending) {
      if (deadline.at > now) break
      this.#pending.delete(deadline)
      deadline.expire()
    }
    if (this.#pending.size === 0) {
      clearInterval(this.#timer)
      this.#timer = undefined
    }
  }
}
