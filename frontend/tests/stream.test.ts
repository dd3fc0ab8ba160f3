import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { StreamClient, type SocketLike, type StreamHandlers, type StreamStatus } from '../src/lib/stream'
import type { DeltaFrame, NoteFrame, SnapshotFrame } from '../src/lib/types'

class FakeSocket implements SocketLike {
  onopen: ((ev: unknown) => void) | null = null
  onmessage: ((ev: { data: unknown }) => void) | null = null
  onclose: ((ev: unknown) => void) | null = null
  onerror: ((ev: unknown) => void) | null = null
  sent: unknown[] = []
  closed = false
  constructor(readonly url: string) {}
  send(data: string): void {
    if (this.closed) throw new Error('send on a closed socket')
    this.sent.push(JSON.parse(data))
  }
  close(): void {
    if (this.closed) return
    this.closed = true
    // a browser fires close after close(); a client must not take its own close for a loss
    this.onclose?.({})
  }
  /** Server side helpers. */
  open(): void {
    this.onopen?.({})
  }
  receive(frame: unknown): void {
    this.onmessage?.({ data: typeof frame === 'string' ? frame : JSON.stringify(frame) })
  }
  lose(code?: number): void {
    this.closed = true
    this.onerror?.({})
    this.onclose?.(code === undefined ? {} : { code })
  }
}

const snapshot = (seq: number, epoch = 'E'): SnapshotFrame => ({
  t: 'snapshot',
  seq,
  name: 'hub',
  epoch,
  sources: [],
  nodes: [],
  processes: [],
  jobs: [],
})
const delta = (seq: number): DeltaFrame => ({
  t: 'delta',
  seq,
  changes: [{ op: 'del', kind: 'process', id: 'x', value: null }],
})

interface Harness {
  client: StreamClient
  sockets: FakeSocket[]
  statuses: { status: StreamStatus; attempt: number; retryIn: number | null }[]
  snapshots: SnapshotFrame[]
  deltas: DeltaFrame[]
  notes: NoteFrame[]
  state: { seq: number; epoch: string } | null
  last(): FakeSocket
  /** Whether the delta handler accepts the next deltas. */
  accept: boolean
}

function harness(
  opts: { silence?: number; random?: () => number; minDelay?: number; maxDelay?: number; closed?: (code: number) => boolean } = {},
): Harness {
  const h = {
    sockets: [] as FakeSocket[],
    statuses: [] as Harness['statuses'],
    snapshots: [] as SnapshotFrame[],
    deltas: [] as DeltaFrame[],
    notes: [] as NoteFrame[],
    state: null as Harness['state'],
    accept: true,
  } as Harness
  const handlers: StreamHandlers = {
    snapshot: (f) => {
      h.snapshots.push(f)
      h.state = { seq: f.seq, epoch: f.epoch }
    },
    delta: (f) => {
      if (!h.accept || !h.state || f.seq - f.changes.length !== h.state.seq) return false
      h.deltas.push(f)
      h.state = { ...h.state, seq: f.seq }
      return true
    },
    note: (f) => h.notes.push(f),
    status: (status, detail) => h.statuses.push({ status, ...detail }),
  }
  let n = 0
  h.client = new StreamClient(handlers, {
    url: () => `ws://hub/api/stream?n=${++n}`,
    socket: (url) => {
      const s = new FakeSocket(url)
      h.sockets.push(s)
      return s
    },
    position: () => h.state,
    random: opts.random ?? (() => 0.5),
    // only the options given: an explicit `undefined` would override the defaults
    ...(opts.silence !== undefined ? { silence: opts.silence } : {}),
    ...(opts.minDelay !== undefined ? { minDelay: opts.minDelay } : {}),
    ...(opts.maxDelay !== undefined ? { maxDelay: opts.maxDelay } : {}),
    ...(opts.closed !== undefined ? { closed: opts.closed } : {}),
    timers: globalThis,
  })
  h.last = () => h.sockets[h.sockets.length - 1]
  return h
}

beforeEach(() => {
  vi.useFakeTimers()
})
afterEach(() => {
  vi.useRealTimers()
})

describe('StreamClient hello', () => {
  it('asks for a snapshot ({}) the first time, then resumes from its position', () => {
    const h = harness()
    h.client.start()
    expect(h.sockets).toHaveLength(1)
    expect(h.last().url).toBe('ws://hub/api/stream?n=1') // the url function is called per connect
    expect(h.last().sent).toEqual([])
    h.last().open()
    expect(h.last().sent).toEqual([{}, { ping: expect.any(Number) }]) // the ping confirms a resume
    h.last().receive(snapshot(7, 'E1'))
    h.last().receive(delta(8))
    h.last().lose()
    vi.advanceTimersByTime(10_000)
    expect(h.sockets).toHaveLength(2)
    expect(h.last().url).toBe('ws://hub/api/stream?n=2')
    h.last().open()
    expect(h.last().sent[0]).toEqual({ since: 8, epoch: 'E1' })
    h.client.stop()
  })

  it('a snapshot makes the status live; notes go to their handler; junk is ignored', () => {
    const h = harness()
    h.client.start()
    expect(h.client.status).toBe('connecting')
    h.last().open()
    h.last().receive('not json{')
    h.last().receive({ t: 'mystery' })
    expect(h.client.status).toBe('connecting')
    h.last().receive(snapshot(1))
    expect(h.client.status).toBe('live')
    expect(h.statuses).toEqual([{ status: 'live', attempt: 0, retryIn: null }])
    expect(h.snapshots).toHaveLength(1)
    const note: NoteFrame = {
      t: 'note',
      id: 'n1',
      ts: 1,
      severity: 'error',
      source: 'sv1',
      subject: { kind: 'process', id: 'sv1:a:a' },
      title: 'FATAL',
      text: '',
    }
    h.last().receive(note)
    expect(h.notes).toEqual([note])
    // a second snapshot does not announce "live" again
    h.last().receive(snapshot(5))
    expect(h.statuses).toHaveLength(1)
    h.client.stop()
  })
})

describe('StreamClient gaps', () => {
  it('a delta the handler refuses drops the connection and reconnects at once asking for a snapshot', () => {
    const h = harness()
    h.client.start()
    h.last().open()
    h.last().receive(snapshot(10))
    h.last().receive(delta(11))
    expect(h.deltas).toHaveLength(1)
    const first = h.last()
    first.receive(delta(13)) // 12 is missing
    expect(first.closed).toBe(true)
    expect(h.sockets).toHaveLength(2) // no back-off for a resync
    expect(h.statuses.map((s) => s.status)).toEqual(['live']) // not a loss: no banner
    // frames still arriving on the old socket are ignored
    first.onmessage?.({ data: JSON.stringify(delta(12)) })
    expect(h.deltas).toHaveLength(1)
    h.last().open()
    expect(h.last().sent[0]).toEqual({}) // even though the position is known (seq 11)
    h.last().receive(snapshot(20))
    expect(h.snapshots.map((s) => s.seq)).toEqual([10, 20])
    // the next reconnect resumes normally again
    h.last().lose()
    vi.advanceTimersByTime(10_000)
    h.last().open()
    expect(h.last().sent[0]).toEqual({ since: 20, epoch: 'E' })
    h.client.stop()
  })
})

describe('StreamClient reconnects', () => {
  it('delay(n) doubles from minDelay, is capped at maxDelay, with ±20 % jitter', () => {
    const mid = harness({ random: () => 0.5 }).client
    expect([1, 2, 3, 4, 5, 6, 7, 50].map((n) => mid.delay(n))).toEqual([250, 500, 1000, 2000, 4000, 5000, 5000, 5000])
    const low = harness({ random: () => 0 }).client
    expect(low.delay(1)).toBe(200)
    expect(low.delay(10)).toBe(4000)
    const high = harness({ random: () => 0.999999 }).client
    expect(high.delay(1)).toBe(300)
    expect(high.delay(10)).toBe(6000)
    const custom = harness({ random: () => 0.5, minDelay: 100, maxDelay: 1000 }).client
    expect([1, 2, 3, 4, 5, 6].map((n) => custom.delay(n))).toEqual([100, 200, 400, 800, 1000, 1000])
    for (let i = 0; i < 200; i++) {
      const r = harness({ random: Math.random }).client
      const n = 1 + (i % 9)
      const base = Math.min(5000, 250 * 2 ** (n - 1))
      const d = r.delay(n)
      expect(d).toBeGreaterThanOrEqual(Math.floor(base * 0.8))
      expect(d).toBeLessThanOrEqual(Math.ceil(base * 1.2))
    }
  })

  it('a lost connection goes reconnecting with growing delays, then back to live', () => {
    const h = harness()
    h.client.start()
    h.last().open()
    h.last().receive(snapshot(1))
    expect(h.client.status).toBe('live')

    h.last().lose()
    expect(h.client.status).toBe('reconnecting')
    expect(h.statuses.at(-1)).toEqual({ status: 'reconnecting', attempt: 1, retryIn: 250 })
    vi.advanceTimersByTime(249)
    expect(h.sockets).toHaveLength(1)
    vi.advanceTimersByTime(1)
    expect(h.sockets).toHaveLength(2)

    // the hub is still down: each failure waits twice as long
    h.last().lose()
    expect(h.statuses.at(-1)).toEqual({ status: 'reconnecting', attempt: 2, retryIn: 500 })
    vi.advanceTimersByTime(500)
    expect(h.sockets).toHaveLength(3)
    h.last().lose()
    expect(h.statuses.at(-1)).toEqual({ status: 'reconnecting', attempt: 3, retryIn: 1000 })
    vi.advanceTimersByTime(999)
    expect(h.sockets).toHaveLength(3)
    vi.advanceTimersByTime(1)
    expect(h.sockets).toHaveLength(4)

    // back: the missed deltas make it live again, and the attempts start over
    h.last().open()
    expect(h.last().sent[0]).toEqual({ since: 1, epoch: 'E' })
    h.last().receive(delta(2))
    expect(h.client.status).toBe('live')
    expect(h.client.attempt).toBe(0)
    expect(h.statuses.at(-1)).toEqual({ status: 'live', attempt: 0, retryIn: null })
    h.last().lose()
    expect(h.statuses.at(-1)).toEqual({ status: 'reconnecting', attempt: 1, retryIn: 250 })
    h.client.stop()
  })

  it('caps the delay after many failures', () => {
    const h = harness()
    h.client.start()
    for (let i = 0; i < 12; i++) {
      h.last().lose()
      vi.advanceTimersByTime(h.statuses.at(-1)?.retryIn ?? 0)
    }
    const delays = h.statuses.map((s) => s.retryIn)
    expect(delays.slice(0, 6)).toEqual([250, 500, 1000, 2000, 4000, 5000])
    expect(Math.max(...(delays as number[]))).toBe(5000)
    expect(h.sockets).toHaveLength(13)
    h.client.stop()
  })

  // BUG in src/lib/stream.ts (see the report): when the client resumes and the hub has
  // nothing missed to send, no frame arrives, so the status stays 'reconnecting' (and the
  // page shows the "Lost the hub" banner) until the fleet next changes. Pongs do not count.
  it('becomes live again after a resume with nothing missed, once the hub answers', () => {
    const h = harness({ silence: 3000 })
    h.client.start()
    h.last().open()
    h.last().receive(snapshot(1))
    h.last().lose()
    vi.advanceTimersByTime(250)
    const s = h.last()
    s.open()
    expect(s.sent[0]).toEqual({ since: 1, epoch: 'E' })
    // the hub answers every ping it gets (and sends nothing else: the fleet is quiet)
    vi.advanceTimersByTime(1000)
    for (const m of s.sent) {
      if (m && typeof m === 'object' && 'ping' in m) s.receive({ t: 'pong', ping: (m as { ping: unknown }).ping })
    }
    expect(h.client.status).toBe('live')
  })
})

describe('StreamClient liveness', () => {
  it('pings, and drops a connection that stays silent longer than `silence`', () => {
    const h = harness({ silence: 3000 })
    h.client.start()
    const s = h.last()
    s.open()
    s.receive(snapshot(1))
    vi.advanceTimersByTime(1000) // pings at open, then every max(1 s, silence / 3)
    expect(s.sent.slice(1)).toEqual([{ ping: expect.any(Number) }, { ping: expect.any(Number) }])
    vi.advanceTimersByTime(2000)
    expect(s.sent.filter((m) => typeof m === 'object' && m !== null && 'ping' in m)).toHaveLength(4)
    expect(s.closed).toBe(false)
    vi.advanceTimersByTime(1000) // 4 s of silence
    expect(s.closed).toBe(true)
    expect(h.client.status).toBe('reconnecting')
    expect(h.statuses.at(-1)?.attempt).toBe(1)
    vi.advanceTimersByTime(250)
    expect(h.sockets).toHaveLength(2)
    h.client.stop()
  })

  it('any frame (a pong too) keeps the connection alive', () => {
    const h = harness({ silence: 3000 })
    h.client.start()
    const s = h.last()
    s.open()
    s.receive(snapshot(1))
    for (let i = 0; i < 10; i++) {
      vi.advanceTimersByTime(1000)
      s.receive({ t: 'pong', ping: i })
    }
    expect(s.closed).toBe(false)
    expect(h.sockets).toHaveLength(1)
    expect(h.client.status).toBe('live')
    h.client.stop()
  })
})

describe('StreamClient stop', () => {
  it('stop() closes the socket and stops reconnecting', () => {
    const h = harness()
    h.client.start()
    h.last().open()
    h.last().receive(snapshot(1))
    h.client.stop()
    expect(h.last().closed).toBe(true)
    vi.advanceTimersByTime(60_000)
    expect(h.sockets).toHaveLength(1)
    expect(h.statuses.map((s) => s.status)).toEqual(['live'])
    expect(vi.getTimerCount()).toBe(0) // the pinger is gone too
  })

  it('stop() during a back-off cancels the pending reconnect', () => {
    const h = harness()
    h.client.start()
    h.last().lose()
    expect(h.client.status).toBe('reconnecting')
    h.client.stop()
    vi.advanceTimersByTime(60_000)
    expect(h.sockets).toHaveLength(1)
    expect(vi.getTimerCount()).toBe(0)
  })
})

describe('StreamClient credentials gone', () => {
  it('a close the `closed` hook refuses (4401) stops the client: no reconnect loop', () => {
    const codes: number[] = []
    const h = harness({ closed: (code) => (codes.push(code), code !== 4401) })
    h.client.start()
    h.last().open()
    h.last().receive(snapshot(1))
    h.last().lose(1006) // any other close: reconnect as before
    expect(h.client.status).toBe('reconnecting')
    vi.advanceTimersByTime(10_000)
    expect(h.sockets).toHaveLength(2)
    h.last().open()
    h.last().receive(snapshot(2))
    h.last().lose(4401)
    vi.advanceTimersByTime(60_000)
    expect(codes).toEqual([1006, 4401])
    expect(h.sockets).toHaveLength(2)
    expect(vi.getTimerCount()).toBe(0)
  })
})
