// The page's copy of the fleet: a Map per kind, keyed by id, fed by the stream.
//
// The Maps are plain (not reactive): 10,000 processes with a proxy each would cost more
// than the whole table. Views depend on `ticks[kind]` (or `tick`), which the store bumps
// at most `maxRepaintsPerSecond` times a second after changes, so a burst of deltas costs
// one repaint.

import { reactive, ref, shallowRef, type Ref } from 'vue'
import type { DeltaFrame, EntityOf, Kind, Note, SnapshotFrame, SourceStatus } from './types'
import { KINDS, PLURAL } from './types'

export type Maps = { [K in Kind]: Map<string, EntityOf[K]> }

export interface Scheduler {
  now(): number
  later(fn: () => void, ms: number): unknown
}

const browserScheduler: Scheduler = {
  now: () => performance.now(),
  later: (fn, ms) => setTimeout(fn, ms),
}

function emptyMaps(): Maps {
  return { source: new Map(), node: new Map(), process: new Map(), job: new Map() }
}

export class FleetStore {
  /** The live fleet, fed by the stream (also while the views show the past). */
  readonly live: Maps = emptyMaps()
  private pastMaps: Maps | null = null
  /** The time (Unix s) the views show, or null for live (issue 13: time travel). */
  readonly past = ref<number | null>(null)

  /** What the views read: the live fleet, or the fleet as it was at `past`. */
  get maps(): Maps {
    return this.pastMaps ?? this.live
  }
  seq = -1
  epoch = ''
  /** The hub's name (`[hub] name`). */
  readonly name = ref('fleetwatch')
  /** Bumped on each repaint in which that kind changed. */
  readonly ticks: Record<Kind, Ref<number>> = {
    source: ref(0),
    node: ref(0),
    process: ref(0),
    job: ref(0),
  }
  /** Bumped on every repaint. */
  readonly tick = ref(0)
  /** Notifications, oldest first, at most `maxNotes`. */
  readonly notes = shallowRef<Note[]>([])
  readonly connection = reactive({
    status: 'connecting' as 'connecting' | 'live' | 'reconnecting',
    attempt: 0,
    retryIn: null as number | null,
    since: Date.now(),
  })
  /** When the last repaint happened (ms, the scheduler's clock), and the seq it showed. */
  lastRepaint = { at: 0, seq: -1 }
  readonly listeners = new Set<(note: Note) => void>()

  private dirty = new Set<Kind>()
  private pending = false
  private readonly minInterval: number

  constructor(
    private readonly scheduler: Scheduler = browserScheduler,
    maxRepaintsPerSecond = 10,
    readonly maxNotes = 500,
  ) {
    this.minInterval = 1000 / maxRepaintsPerSecond
  }

  /** Replace everything with a snapshot. */
  applySnapshot(frame: SnapshotFrame): void {
    for (const kind of KINDS) {
      const map = this.live[kind] as Map<string, unknown>
      map.clear()
      for (const item of frame[PLURAL[kind]]) map.set(item.id, item)
      this.dirty.add(kind)
    }
    this.seq = frame.seq
    this.epoch = frame.epoch ?? ''
    this.name.value = frame.name
    this.schedule()
  }

  /** Apply a delta; false (and nothing applied) when it does not follow on from `seq`. */
  applyDelta(frame: DeltaFrame): boolean {
    if (this.seq < 0 || frame.seq - frame.changes.length !== this.seq) return false
    for (const c of frame.changes) {
      const map = this.live[c.kind] as Map<string, unknown> | undefined
      if (!map) continue
      if (c.op === 'put') map.set(c.id, c.value)
      else map.delete(c.id)
      this.dirty.add(c.kind)
    }
    this.seq = frame.seq
    this.schedule()
    return true
  }

  /** Show the fleet as a history snapshot says it was (read-only: see lib/actions.ts). */
  showPast(frame: SnapshotFrame, at: number): void {
    const maps = emptyMaps()
    for (const kind of KINDS) {
      const map = maps[kind] as Map<string, unknown>
      for (const item of frame[PLURAL[kind]]) map.set(item.id, item)
    }
    this.pastMaps = maps
    this.past.value = at
    for (const kind of KINDS) this.dirty.add(kind)
    this.schedule()
  }

  /** Back to the live fleet, at once: it was kept up to date meanwhile. */
  showLive(): void {
    if (this.pastMaps === null && this.past.value === null) return
    this.pastMaps = null
    this.past.value = null
    for (const kind of KINDS) this.dirty.add(kind)
    this.schedule()
  }

  addNote(note: Note): void {
    const known = this.notes.value.findIndex((n) => n.id === note.id)
    if (known >= 0 && !(note.updated && note.ts >= this.notes.value[known].ts)) return
    // An updated note (a flapping count) replaces the one with its id, at the end.
    const kept = known >= 0 ? this.notes.value.filter((_, i) => i !== known) : this.notes.value
    const notes = kept.concat(note)
    this.notes.value = notes.length > this.maxNotes ? notes.slice(-this.maxNotes) : notes
    for (const fn of this.listeners) fn(note)
  }

  setNotes(notes: Note[]): void {
    const known = new Set(this.notes.value.map((n) => n.id))
    // A fetched note newer than the streamed one of its id (an updated count) wins.
    const fetched = new Map(notes.map((n) => [n.id, n]))
    const current = this.notes.value.map((n) => {
      const f = fetched.get(n.id)
      return f && f.ts > n.ts ? f : n
    })
    const merged = notes.filter((n) => !known.has(n.id)).concat(current)
    merged.sort((a, b) => a.ts - b.ts)
    this.notes.value = merged.slice(-this.maxNotes)
  }

  onNote(fn: (note: Note) => void): () => void {
    this.listeners.add(fn)
    return () => this.listeners.delete(fn)
  }

  get<K extends Kind>(kind: K, id: string): EntityOf[K] | undefined {
    return this.maps[kind].get(id)
  }

  list<K extends Kind>(kind: K): EntityOf[K][] {
    return Array.from(this.maps[kind].values())
  }

  /** Counts of a kind's items by a field (state, status, ...). */
  countBy<K extends Kind>(kind: K, field: (item: EntityOf[K]) => string): Map<string, number> {
    const out = new Map<string, number>()
    for (const item of this.maps[kind].values()) {
      const key = field(item)
      out.set(key, (out.get(key) ?? 0) + 1)
    }
    return out
  }

  sourceStatus(id: string): SourceStatus | undefined {
    return this.maps.source.get(id)?.status
  }

  /** Run the pending repaint now (tests; the scheduler calls it otherwise). */
  flush(): void {
    this.pending = false
    this.lastRepaint = { at: this.scheduler.now(), seq: this.seq }
    for (const kind of this.dirty) this.ticks[kind].value += 1
    this.dirty.clear()
    this.tick.value += 1
  }

  private schedule(): void {
    if (this.pending) return
    this.pending = true
    const wait = Math.max(0, this.minInterval - (this.scheduler.now() - this.lastRepaint.at))
    this.scheduler.later(() => this.flush(), wait)
  }
}
