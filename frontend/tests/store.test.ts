import { describe, expect, it } from 'vitest'
import { FleetStore, type Scheduler } from '../src/lib/store'
import type { Change, DeltaFrame, Job, Node, Note, Process, SnapshotFrame, Source } from '../src/lib/types'

/** A fake clock: `later` queues callbacks, `advance` runs the due ones in time order. */
class FakeScheduler implements Scheduler {
  t = 1000
  queue: { at: number; fn: () => void; ms: number }[] = []
  now(): number {
    return this.t
  }
  later(fn: () => void, ms: number): unknown {
    this.queue.push({ at: this.t + ms, fn, ms })
    return this.queue.length
  }
  advance(ms: number): void {
    const until = this.t + ms
    for (;;) {
      this.queue.sort((a, b) => a.at - b.at)
      const next = this.queue[0]
      if (!next || next.at > until) break
      this.queue.shift()
      this.t = next.at
      next.fn()
    }
    this.t = until
  }
}

function source(id: string, status: Source['status'] = 'online'): Source {
  return {
    id,
    kind: 'supervisor',
    name: id,
    url: `http://${id}:9001`,
    status,
    since: 1,
    error: null,
    version: '4.3.0',
    actions: [],
    info: {},
    last_seen: 1,
  }
}

function proc(id: string, state = 'RUNNING'): Process {
  const [src, group, name] = id.split(':')
  return {
    id,
    source: src,
    group,
    name,
    state,
    pid: 1,
    started: 1,
    stopped: null,
    exitstatus: 0,
    description: '',
    spawnerr: '',
    stdout_logfile: '',
    stderr_logfile: '',
  }
}

function node(id: string, state = 'online'): Node {
  return { id, source: 'build', name: id, address: '10.0.0.1', state, since: 1, labels: {}, metrics: {} }
}

function job(id: string, state: Job['state'] = 'running'): Job {
  return { id, source: 'build', client: 'a', server: 'b', state, file: 'x.c', started: 1, ended: null, metrics: {} }
}

function snapshot(seq: number, parts: Partial<SnapshotFrame> = {}): SnapshotFrame {
  return {
    t: 'snapshot',
    seq,
    name: 'ACME',
    epoch: 'e1',
    sources: [],
    nodes: [],
    processes: [],
    jobs: [],
    ...parts,
  }
}

function delta(seq: number, changes: Change[]): DeltaFrame {
  return { t: 'delta', seq, changes }
}

function put(value: Process | Source | Node | Job, kind: Change['kind']): Change {
  return { op: 'put', kind, id: value.id, value }
}

function note(id: string, ts: number, severity = 'warning'): Note {
  return { id, ts, severity, source: 'sv1', subject: { kind: 'process', id: 'sv1:a:a' }, title: `t${id}`, text: '' }
}

function ticks(store: FleetStore): Record<string, number> {
  return {
    source: store.ticks.source.value,
    node: store.ticks.node.value,
    process: store.ticks.process.value,
    job: store.ticks.job.value,
    all: store.tick.value,
  }
}

describe('FleetStore snapshots', () => {
  it('a snapshot replaces everything', () => {
    const store = new FleetStore(new FakeScheduler())
    store.applySnapshot(
      snapshot(5, {
        sources: [source('sv1'), source('sv2')],
        processes: [proc('sv1:web:a'), proc('sv2:web:b')],
        nodes: [node('build/h1')],
        jobs: [job('build#1')],
      }),
    )
    expect(store.seq).toBe(5)
    expect(store.epoch).toBe('e1')
    expect(store.name.value).toBe('ACME')
    expect(store.list('source').map((s) => s.id)).toEqual(['sv1', 'sv2'])
    expect(store.maps.process.size).toBe(2)

    store.applySnapshot({ ...snapshot(2, { sources: [source('sv3')] }), epoch: 'e2', name: 'Other' })
    expect(store.seq).toBe(2)
    expect(store.epoch).toBe('e2')
    expect(store.name.value).toBe('Other')
    expect(store.list('source').map((s) => s.id)).toEqual(['sv3'])
    expect(store.maps.process.size).toBe(0)
    expect(store.maps.node.size).toBe(0)
    expect(store.maps.job.size).toBe(0)
    expect(store.get('source', 'sv1')).toBeUndefined()
    expect(store.sourceStatus('sv3')).toBe('online')
  })
})

describe('FleetStore deltas', () => {
  function loaded(): { store: FleetStore; clock: FakeScheduler } {
    const clock = new FakeScheduler()
    const store = new FleetStore(clock)
    store.applySnapshot(snapshot(10, { processes: [proc('sv1:web:a'), proc('sv1:web:b')], sources: [source('sv1')] }))
    return { store, clock }
  }

  it('refuses a delta before any snapshot', () => {
    const store = new FleetStore(new FakeScheduler())
    expect(store.applyDelta(delta(1, [put(proc('sv1:web:a'), 'process')]))).toBe(false)
    expect(store.maps.process.size).toBe(0)
    expect(store.seq).toBe(-1)
  })

  it('applies a delta that follows on (seq - changes = store.seq)', () => {
    const { store } = loaded()
    const ok = store.applyDelta(
      delta(12, [put(proc('sv1:web:a', 'STOPPED'), 'process'), { op: 'del', kind: 'process', id: 'sv1:web:b', value: null }]),
    )
    expect(ok).toBe(true)
    expect(store.seq).toBe(12)
    expect(store.get('process', 'sv1:web:a')?.state).toBe('STOPPED')
    expect(store.get('process', 'sv1:web:b')).toBeUndefined()
  })

  it('refuses a gap or an overlap and applies nothing', () => {
    const { store } = loaded()
    // seq 13 with 2 changes starts at 11: one delta is missing
    expect(store.applyDelta(delta(13, [put(proc('sv1:web:a', 'FATAL'), 'process'), put(proc('sv1:web:c'), 'process')]))).toBe(false)
    // seq 10 with 1 change starts at 9: already seen
    expect(store.applyDelta(delta(10, [put(proc('sv1:web:a', 'FATAL'), 'process')]))).toBe(false)
    expect(store.seq).toBe(10)
    expect(store.get('process', 'sv1:web:a')?.state).toBe('RUNNING')
    expect(store.get('process', 'sv1:web:c')).toBeUndefined()
    // the right one still applies afterwards
    expect(store.applyDelta(delta(11, [put(proc('sv1:web:a', 'FATAL'), 'process')]))).toBe(true)
    expect(store.get('process', 'sv1:web:a')?.state).toBe('FATAL')
  })

  it('counts by a field', () => {
    const { store } = loaded()
    store.applyDelta(delta(11, [put(proc('sv1:web:c', 'FATAL'), 'process')]))
    const counts = store.countBy('process', (p) => p.state)
    expect(Object.fromEntries(counts)).toEqual({ RUNNING: 2, FATAL: 1 })
  })
})

describe('FleetStore repaints', () => {
  it('throttles repaints to at most 10 a second and bumps only the kinds that changed', () => {
    const clock = new FakeScheduler()
    const store = new FleetStore(clock)
    store.applySnapshot(snapshot(0, { processes: [proc('sv1:web:a')] }))
    // nothing happens synchronously: the repaint is scheduled
    expect(ticks(store)).toEqual({ source: 0, node: 0, process: 0, job: 0, all: 0 })
    clock.advance(0)
    expect(ticks(store)).toEqual({ source: 1, node: 1, process: 1, job: 1, all: 1 })
    expect(store.lastRepaint).toEqual({ at: 1000, seq: 0 })

    // a burst of 50 process deltas within 100 ms: one repaint, 100 ms after the previous one
    for (let i = 1; i <= 50; i++) {
      expect(store.applyDelta(delta(i, [put(proc('sv1:web:a', i % 2 ? 'STOPPED' : 'RUNNING'), 'process')]))).toBe(true)
      clock.advance(1)
    }
    expect(ticks(store).all).toBe(1)
    clock.advance(49) // t = 1099
    expect(ticks(store).all).toBe(1)
    clock.advance(1) // t = 1100
    expect(ticks(store)).toEqual({ source: 1, node: 1, process: 2, job: 1, all: 2 })
    expect(store.lastRepaint.at).toBe(1100)
    expect(store.lastRepaint.seq).toBe(50)

    // a job change later: only the job tick moves
    clock.advance(500)
    store.applyDelta(delta(51, [put(job('build#1'), 'job')]))
    clock.advance(0) // long since the last repaint: no wait
    expect(ticks(store)).toEqual({ source: 1, node: 1, process: 2, job: 2, all: 3 })
  })

  it('never repaints more than 10 times in a second under a steady stream', () => {
    const clock = new FakeScheduler()
    const store = new FleetStore(clock)
    store.applySnapshot(snapshot(0))
    clock.advance(0)
    const before = store.tick.value
    const repaintTimes: number[] = []
    let last = store.tick.value
    for (let i = 1; i <= 1000; i++) {
      store.applyDelta(delta(i, [put(node('build/h1', i % 2 ? 'blocked' : 'online'), 'node')]))
      clock.advance(1)
      if (store.tick.value !== last) {
        last = store.tick.value
        repaintTimes.push(clock.t)
      }
    }
    const repaints = store.tick.value - before
    expect(repaints).toBeGreaterThanOrEqual(9)
    expect(repaints).toBeLessThanOrEqual(10)
    for (let i = 1; i < repaintTimes.length; i++) {
      expect(repaintTimes[i] - repaintTimes[i - 1]).toBeGreaterThanOrEqual(100)
    }
    expect(store.ticks.process.value).toBe(1) // only the snapshot touched processes
  })

  it('honours a custom rate', () => {
    const clock = new FakeScheduler()
    const store = new FleetStore(clock, 2)
    store.applySnapshot(snapshot(0))
    clock.advance(0)
    store.applyDelta(delta(1, [put(source('sv1'), 'source')]))
    clock.advance(499)
    expect(store.ticks.source.value).toBe(1)
    clock.advance(1)
    expect(store.ticks.source.value).toBe(2)
  })

  it('flush() repaints at once', () => {
    const clock = new FakeScheduler()
    const store = new FleetStore(clock)
    store.applySnapshot(snapshot(3, { sources: [source('sv1')] }))
    store.flush()
    expect(store.ticks.source.value).toBe(1)
    expect(store.lastRepaint.seq).toBe(3)
  })
})

describe('FleetStore notes', () => {
  it('adds notes, caps them and tells listeners', () => {
    const store = new FleetStore(new FakeScheduler(), 10, 3)
    const heard: string[] = []
    const off = store.onNote((n) => heard.push(n.id))
    for (let i = 1; i <= 5; i++) store.addNote(note(`n${i}`, i))
    expect(store.notes.value.map((n) => n.id)).toEqual(['n3', 'n4', 'n5'])
    expect(heard).toEqual(['n1', 'n2', 'n3', 'n4', 'n5'])
    off()
    store.addNote(note('n6', 6))
    expect(heard).toHaveLength(5)
    expect(store.notes.value.map((n) => n.id)).toEqual(['n4', 'n5', 'n6'])
  })

  it('merges fetched notes without duplicates, oldest first, capped', () => {
    const store = new FleetStore(new FakeScheduler(), 10, 4)
    store.addNote(note('b', 20))
    store.addNote(note('d', 40))
    const before = store.notes.value
    store.setNotes([note('a', 10), note('b', 20), note('c', 30)])
    expect(store.notes.value).not.toBe(before) // a new array: the shallowRef triggers
    expect(store.notes.value.map((n) => n.id)).toEqual(['a', 'b', 'c', 'd'])
    store.setNotes([note('e', 50), note('a', 10)])
    expect(store.notes.value.map((n) => n.id)).toEqual(['b', 'c', 'd', 'e'])
  })

  it('an updated note (a flapping count) replaces the one of its id, once, at the end', () => {
    const store = new FleetStore(new FakeScheduler(), 10, 10)
    const heard: (number | undefined)[] = []
    store.onNote((n) => heard.push(n.count))
    store.addNote({ ...note('f', 10), kind: 'flapping', count: 5 })
    store.addNote(note('x', 11))
    store.addNote({ ...note('f', 12), kind: 'flapping', count: 6, updated: true })
    store.addNote({ ...note('f', 12), kind: 'flapping', count: 6, updated: true }) // a replay: the same note again
    store.addNote({ ...note('f', 11), kind: 'flapping', count: 9 }) // not an update: ignored
    expect(store.notes.value.map((n) => [n.id, n.count])).toEqual([
      ['x', undefined],
      ['f', 6],
    ])
    expect(heard).toEqual([5, undefined, 6, 6])
    // a fetched copy newer than the streamed one wins
    store.setNotes([{ ...note('f', 20), kind: 'flapping', count: 11, updated: true }])
    expect(store.notes.value.find((n) => n.id === 'f')?.count).toBe(11)
  })
})
