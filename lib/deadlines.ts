/** A command waiting for its reply, and what to do if the reply does not come in time. */
export interface Deadline {
  at: number
  expire (): void
}

/**
 * The timeouts of the commands in flight, watched by one shared timer instead of a setTimeout
 * per command: under load, a few wake-ups a second rather than a timer armed and cleared, and
 * the clock read, for every command. A command expires between `ms` and `ms` + 2 × `tick` after
 * it was sent.
 */
export class Deadlines {
  readonly #ms: number
  readonly #tick: number
  // insertion order is deadline order: every entry waits the same time on a monotonic clock
  readonly #pending = new Set<Deadline>()
  #timer: NodeJS.Timeout | undefined
  /** The clock at the last sweep: never more than a tick behind while the timer runs. */
  #now = 0

  constructor (ms: number) {
    this.#ms = ms
    this.#tick = Math.min(50, Math.ceil(ms / 20))
  }

  add (expire: () => void): Deadline {
    if (this.#timer === undefined) {
      this.#now = performance.now()
      this.#timer = setInterval(() => { this.#sweep() }, this.#tick)
    }
    // a tick more, for the clock read up to a tick ago
    const deadline: Deadline = { at: this.#now + this.#ms + this.#tick, expire }
    this.#pending.add(deadline)
    return deadline
  }

  /** Stops watching `deadline`; false when it has already expired, so the reply came too late. */
  settle (deadline: Deadline): boolean {
    return this.#pending.delete(deadline)
  }

  #sweep (): void {
    const now = this.#now = performance.now()
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
