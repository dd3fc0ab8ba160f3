// The client of the hub's stream (src/fleetwatch/web/stream.py has the protocol):
// a snapshot, then gap-free deltas; on reconnect it resumes from its last seq and epoch
// and the hub sends only what was missed (or a snapshot when it cannot, or restarted).

import type { DeltaFrame, Frame, NoteFrame, SnapshotFrame } from './types'

export type StreamStatus = 'connecting' | 'live' | 'reconnecting'

/** The parts of the browser's WebSocket the client uses (a test may hand in its own). */
export interface SocketLike {
  onopen: ((ev: unknown) => void) | null
  onmessage: ((ev: { data: unknown }) => void) | null
  onclose: ((ev: unknown) => void) | null
  onerror: ((ev: unknown) => void) | null
  send(data: string): void
  close(): void
}

export interface StreamHandlers {
  snapshot(frame: SnapshotFrame): void
  /** Return false when the delta does not follow the state (a gap): the client resyncs. */
  delta(frame: DeltaFrame): boolean
  note?(frame: NoteFrame): void
  status?(status: StreamStatus, detail: { attempt: number; retryIn: number | null }): void
}

export interface StreamOptions {
  url: string | (() => string)
  socket?: (url: string) => SocketLike
  /** Where the state is, to resume from; null for "nothing yet". */
  position: () => { seq: number; epoch: string } | null
  /** Reconnect back-off: first delay and cap, in ms. */
  minDelay?: number
  maxDelay?: number
  /** Close a connection that has been silent this long (ms); the hub answers pings. */
  silence?: number
  timers?: Pick<typeof globalThis, 'setTimeout' | 'clearTimeout' | 'setInterval' | 'clearInterval'>
  random?: () => number
  /** Told each close code before a reconnect; answering false stops the client instead
   * (the hub's 4401: the session or token ended, a reconnect would be refused). */
  closed?: (code: number) => boolean
}

export class StreamClient {
  status: StreamStatus = 'connecting'
  attempt = 0
  private ws: SocketLike | null = null
  private retry: ReturnType<typeof setTimeout> | null = null
  private pinger: ReturnType<typeof setInterval> | null = null
  private lastFrame = 0
  private stopped = false
  /** The next hello asks for a snapshot, whatever the state's position. */
  private fresh = false
  private readonly opts: Required<Omit<StreamOptions, 'socket' | 'timers' | 'random' | 'closed'>> &
    Pick<StreamOptions, 'socket' | 'closed'>
  private readonly timers: NonNullable<StreamOptions['timers']>
  private readonly random: () => number

  constructor(
    private readonly handlers: StreamHandlers,
    options: StreamOptions,
  ) {
    this.opts = {
      ...options,
      minDelay: options.minDelay ?? 250,
      maxDelay: options.maxDelay ?? 5000,
      silence: options.silence ?? 30000,
    }
    this.timers = options.timers ?? globalThis
    this.random = options.random ?? Math.random
  }

  start(): void {
    this.stopped = false
    this.connect()
  }

  stop(): void {
    this.stopped = true
    this.clearTimers()
    const ws = this.ws
    this.ws = null
    ws?.close()
  }

  /** Drop the connection and start again from a snapshot (after a gap). */
  resync(): void {
    this.drop(true)
  }

  /** The delay before reconnect attempt `n` (1-based): doubling, capped, ±20 % jitter. */
  delay(n: number): number {
    const base = Math.min(this.opts.maxDelay, this.opts.minDelay * 2 ** Math.max(0, n - 1))
    return Math.round(base * (0.8 + 0.4 * this.random()))
  }

  private connect(): void {
    if (this.stopped) return
    const url = typeof this.opts.url === 'function' ? this.opts.url() : this.opts.url
    const ws = this.opts.socket ? this.opts.socket(url) : (new WebSocket(url) as unknown as SocketLike)
    this.ws = ws
    ws.onopen = () => {
      if (ws !== this.ws) return
      const at = this.fresh ? null : this.opts.position()
      this.fresh = false
      ws.send(JSON.stringify(at ? { since: at.seq, epoch: at.epoch } : {}))
      // The hub answers pings only after the snapshot or the missed deltas, so this pong
      // confirms a resume even when nothing was missed and nothing else arrives.
      ws.send(JSON.stringify({ ping: Date.now() }))
      this.lastFrame = Date.now()
      this.pinger = this.timers.setInterval(() => this.ping(), Math.max(1000, this.opts.silence / 3))
    }
    ws.onmessage = (ev) => {
      if (ws !== this.ws) return
      this.lastFrame = Date.now()
      this.receive(typeof ev.data === 'string' ? ev.data : String(ev.data))
    }
    ws.onclose = (ev) => {
      if (ws !== this.ws) return
      const code = Number((ev as { code?: unknown } | null)?.code ?? 0)
      if (this.opts.closed && this.opts.closed(code) === false) {
        this.stop()
        return
      }
      this.drop(false)
    }
    ws.onerror = () => {
      /* onclose follows */
    }
  }

  private receive(text: string): void {
    let frame: Frame
    try {
      frame = JSON.parse(text) as Frame
    } catch {
      return
    }
    switch (frame.t) {
      case 'snapshot':
        this.handlers.snapshot(frame)
        this.live()
        break
      case 'delta':
        if (!this.handlers.delta(frame)) {
          this.resync()
          return
        }
        this.live()
        break
      case 'note':
        this.handlers.note?.(frame)
        break
      case 'pong':
        this.live()
        break
      default:
        break
    }
  }

  private live(): void {
    if (this.status !== 'live') {
      this.status = 'live'
      this.attempt = 0
      this.handlers.status?.('live', { attempt: 0, retryIn: null })
    }
  }

  private ping(): void {
    if (!this.ws) return
    if (Date.now() - this.lastFrame > this.opts.silence) {
      this.drop(false) // a half-open connection: nothing came back, not even a pong
      return
    }
    try {
      this.ws.send(JSON.stringify({ ping: Date.now() }))
    } catch {
      this.drop(false)
    }
  }

  private drop(fromScratch: boolean): void {
    this.clearTimers()
    const ws = this.ws
    this.ws = null
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null
      try {
        ws.close()
      } catch {
        /* already closed */
      }
    }
    if (this.stopped) return
    if (fromScratch) {
      this.fresh = true
      this.connect()
      return
    }
    this.attempt += 1
    const retryIn = this.delay(this.attempt)
    this.status = 'reconnecting'
    this.handlers.status?.('reconnecting', { attempt: this.attempt, retryIn })
    this.retry = this.timers.setTimeout(() => {
      this.retry = null
      this.connect()
    }, retryIn)
  }

  private clearTimers(): void {
    if (this.retry !== null) this.timers.clearTimeout(this.retry)
    if (this.pinger !== null) this.timers.clearInterval(this.pinger)
    this.retry = this.pinger = null
  }
}
