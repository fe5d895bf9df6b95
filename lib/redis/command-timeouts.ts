/** A command waiting for its reply, and what to do if the reply does not come in time. */
export interface PendingCommand {
  readonly at: number
  readonly expire: () => void
  /** Neighbours in the watch list; `watched` false once stopped or expired. */
  prev: PendingCommand | undefined
  next: PendingCommand | undefined
  watched: boolean
}

/**
 * The timeouts of the commands in flight, watched by one shared timer, not a setTimeout per command
 * (docs/performance.md). A command expires between `ms` and `ms` + 2 × `tick` after it was sent.
 */
export class CommandTimeouts {
  readonly #ms: number
  readonly #tick: number
  // a linked list in expiry order (every entry waits as long, on a monotonic clock): O(1), no hashing
  #first: PendingCommand | undefined
  #last: PendingCommand | undefined
  #timer: NodeJS.Timeout | undefined
  /** The clock at the last sweep: never more than a tick behind while the timer runs. */
  #now = 0

  constructor (ms: number) {
    this.#ms = ms
    this.#tick = Math.min(50, Math.ceil(ms / 20))
  }

  add (expire: () => void): PendingCommand {
    if (this.#timer === undefined) {
      this.#now = performance.now()
      this.#timer = setInterval(() => { this.#sweep() }, this.#tick)
    }
    // a tick more, for the clock read up to a tick ago
    const command: PendingCommand = { at: this.#now + this.#ms + this.#tick, expire, prev: this.#last, next: undefined, watched: true }
    if (this.#last === undefined) this.#first = command
    else this.#last.next = command
    this.#last = command
    return command
  }

  /** Stops watching `command`; false when it has already expired, so the reply came too late. */
  stop (command: PendingCommand): boolean {
    if (!command.watched) return false
    command.watched = false
    const { prev, next } = command
    if (prev === undefined) this.#first = next
    else prev.next = next
    if (next === undefined) this.#last = prev
    else next.prev = prev
    return true
  }

  #sweep (): void {
    const now = this.#now = performance.now()
    let command = this.#first
    while (command !== undefined && command.at <= now) {
      this.stop(command)
      command.expire()
      command = this.#first
    }
    if (this.#first === undefined) {
      clearInterval(this.#timer)
      this.#timer = undefined
    }
  }
}
