// Loaded object values are handed to route code through proxies that note which data key a
// change made in place belongs to (`request.session.cart.push(x)`), so that the end of the request
// writes that key without serializing the rest of the session to find out.

/** The proxies of one loaded document: a new document gets a new watch. */
export class InPlaceWatch {
  /** Keys changed in place since the watch began (or `forget`), with the value they held then. */
  changed: Map<string, object> | undefined
  readonly #proxies = new WeakMap<object, object>()
  readonly #targets = new WeakMap<object, object>()
  /** Objects given a property that can no longer change (`Object.freeze`): a proxy must return its value as it is. */
  #pinned: WeakSet<object> | undefined

  /** The proxy route code gets for `value`, the object held by data key `key`. */
  watch (key: string, value: object): object {
    return this.proxyOf(value, handlerFor(key, value, this))
  }

  /** Marks `key`, whose value when watched was `top`, as changed in place. */
  mark (key: string, top: object): void {
    (this.changed ??= new Map()).set(key, top)
  }

  /** The proxy handed out for `value`, when it is a watched object. */
  shown (value: object): object | undefined {
    return this.#proxies.get(value)
  }

  /** The object behind `value` when it is one of this watch's proxies, else `value`. */
  unwrap<T> (value: T): T {
    return typeof value === 'object' && value !== null ? (this.#targets.get(value) as T | undefined) ?? value : value
  }

  pin (target: object): void {
    (this.#pinned ??= new WeakSet()).add(target)
  }

  isPinned (target: object): boolean {
    return this.#pinned?.has(target) === true
  }

  /** After a save: what was changed so far is stored. */
  forget (): void {
    this.changed = undefined
  }

  /**
   * The proxy of `target` (the loaded value itself, or one reached through it), made with `handler`
   * when there is none yet: one per object, so identity holds.
   */
  proxyOf (target: object, handler: ProxyHandler<object>): object {
    let proxy = this.#proxies.get(target)
    if (proxy === undefined) {
      proxy = new Proxy(target, handler)
      this.#proxies.set(target, proxy)
      this.#targets.set(proxy, target)
    }
    return proxy
  }
}

function handlerFor (key: string, top: object, watch: InPlaceWatch): ProxyHandler<object> {
  const handler: ProxyHandler<object> = {
    get (target, property) {
      const value: unknown = Reflect.get(target, property)
      if (typeof value !== 'object' || value === null) return value
      // a property made read-only for good must be returned as it is (a proxy invariant)
      if (watch.isPinned(target) && isFixed(Reflect.getOwnPropertyDescriptor(target, property))) return value
      return watch.proxyOf(value, handler)
    },
    set (target, property, value) {
      watch.mark(key, top)
      return Reflect.set(target, property, watch.unwrap(value))
    },
    deleteProperty (target, property) {
      watch.mark(key, top)
      return Reflect.deleteProperty(target, property)
    },
    defineProperty (target, property, descriptor) {
      watch.mark(key, top)
      if (descriptor.configurable === false) watch.pin(target)
      return Reflect.defineProperty(target, property, 'value' in descriptor ? { ...descriptor, value: watch.unwrap(descriptor.value) } : descriptor)
    }
  }
  return handler
}

function isFixed (descriptor: PropertyDescriptor | undefined): boolean {
  return descriptor !== undefined && descriptor.configurable === false && descriptor.writable === false
}
