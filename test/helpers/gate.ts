/** Holds requests inside their handlers until opened, so a test decides what happens meanwhile. */
export class Gate {
  #held = 0
  #watchers: Array<{ count: number, resolve: () => void }> = []
  #open!: () => void
  readonly #opened = new Promise<void>(resolve => { this.#open = resolve })

  hold (): Promise<void> {
    this.#held++
    for (const watcher of this.#watchers) if (this.#held >= watcher.count) watcher.resolve()
    return this.#opened
  }

  /** Resolves once `count` requests are held. */
  reached (count: number): Promise<void> {
    return new Promise(resolve => {
      if (this.#held >= count) resolve()
      else this.#watchers.push({ count, resolve })
    })
  }

  open (): void {
    this.#open()
  }
}
