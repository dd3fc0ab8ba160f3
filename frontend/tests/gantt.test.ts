import { describe, expect, it } from 'vitest'
import { assignLanes, barKind, buildGantt, timeTicks, type GanttHost } from '../src/lib/gantt'
import type { Job } from '../src/lib/types'

let next = 1
function job(server: string, started: number | null, ended: number | null, state: Job['state'] = 'done', over: Partial<Job> = {}): Job {
  const id = next++
  return {
    id: `build#${id}`,
    source: 'build',
    client: 'client',
    server,
    state,
    file: `src/f${id}.c`,
    started,
    ended,
    metrics: state === 'done' || state === 'failed' ? { exitcode: state === 'failed' ? 1 : 0 } : {},
    ...over,
  }
}

const hosts: GanttHost[] = [
  { id: 'build/a', source: 'build', name: 'a', slots: 2 },
  { id: 'build/b', source: 'build', name: 'b', slots: 1 },
]

describe('assignLanes', () => {
  it('gives overlapping jobs distinct lanes', () => {
    const jobs = [job('a', 0, 10), job('a', 1, 5), job('a', 2, 8)]
    const placed = assignLanes(jobs, 100)
    const lanes = placed.map((p) => p.lane)
    expect(new Set(lanes).size).toBe(3)
    for (const p of placed) {
      for (const q of placed) {
        if (p !== q && p.start < q.end && q.start < p.end) expect(p.lane).not.toBe(q.lane)
      }
    }
  })

  it('reuses a lane once its job ended', () => {
    const j1 = job('a', 0, 5)
    const j2 = job('a', 1, 3)
    const j3 = job('a', 3, 9) // starts when j2 ended: lane 1 is free again
    const j4 = job('a', 6, 7) // j1 ended at 5: lane 0
    const placed = assignLanes([j4, j3, j2, j1], 100)
    const lane = Object.fromEntries(placed.map((p) => [p.job.id, p.lane]))
    expect(lane[j1.id]).toBe(0)
    expect(lane[j2.id]).toBe(1)
    expect(lane[j3.id]).toBe(1)
    expect(lane[j4.id]).toBe(0)
    expect(Math.max(...placed.map((p) => p.lane))).toBe(1)
  })

  it('keeps a running job busy until now', () => {
    const r = job('a', 10, null, 'running')
    const later = job('a', 50, 60)
    const placed = assignLanes([r, later], 100)
    expect(placed.find((p) => p.job === r)!.end).toBe(100)
    expect(placed.find((p) => p.job === later)!.lane).toBe(1)
  })

  it('skips jobs that never started', () => {
    expect(assignLanes([job('a', null, null, 'waiting')], 100)).toEqual([])
  })
})

describe('buildGantt', () => {
  it('makes a row per host with at least one lane per slot', () => {
    const rows = buildGantt(hosts, [], { from: 0, to: 100 }, 100)
    expect(rows.map((r) => [r.host.id, r.lanes, r.bars.length])).toEqual([
      ['build/a', 2, 0],
      ['build/b', 1, 0],
    ])
  })

  it('puts jobs on their server host and adds lanes beyond the slots when needed', () => {
    const jobs = [job('b', 10, 20), job('b', 12, 18), job('a', 10, 20)]
    const rows = buildGantt(hosts, jobs, { from: 0, to: 100 }, 100)
    expect(rows[0].bars.map((b) => b.id)).toEqual([jobs[2].id])
    expect(rows[1].bars.length).toBe(2)
    expect(rows[1].lanes).toBe(2)
  })

  it('clips bars to the window and drops jobs outside it', () => {
    const before = job('a', 0, 40)
    const across = job('a', 45, 70)
    const inside = job('a', 60, 65)
    const after = job('b', 120, 130)
    const rows = buildGantt(hosts, [before, across, inside, after], { from: 50, to: 100 }, 100)
    const bars = rows.flatMap((r) => r.bars)
    expect(bars.map((b) => b.id).sort()).toEqual([across.id, inside.id].sort())
    const a = bars.find((b) => b.id === across.id)!
    expect(a.from).toBe(50)
    expect(a.to).toBe(70)
    expect(a.start).toBe(45)
    const i = bars.find((b) => b.id === inside.id)!
    expect([i.from, i.to]).toEqual([60, 65])
  })

  it('extends running jobs to now and counts them', () => {
    const r = job('a', 90, null, 'running')
    const rows = buildGantt(hosts, [r], { from: 40, to: 100 }, 97)
    const bar = rows[0].bars[0]
    expect(bar.live).toBe(true)
    expect(bar.end).toBe(97)
    expect(bar.to).toBe(97)
    expect(bar.kind).toBe('running')
    expect(rows[0].running).toBe(1)
    const later = buildGantt(hosts, [r], { from: 40, to: 100 }, 99)
    expect(later[0].bars[0].to).toBe(99)
  })

  it('keeps a lane stable when earlier jobs slide out of the window', () => {
    const j1 = job('a', 0, 30)
    const j2 = job('a', 10, 80)
    const wide = buildGantt(hosts, [j1, j2], { from: 0, to: 100 }, 100)[0].bars.find((b) => b.id === j2.id)!
    const narrow = buildGantt(hosts, [j1, j2], { from: 50, to: 100 }, 100)[0].bars.find((b) => b.id === j2.id)!
    expect(wide.lane).toBe(1)
    expect(narrow.lane).toBe(1)
  })

  it('gives jobs of unknown hosts a row marked gone, only when visible', () => {
    const rows = buildGantt(hosts, [job('zed', 60, 70), job('old', 0, 1)], { from: 50, to: 100 }, 100)
    expect(rows.map((r) => [r.host.id, r.gone])).toEqual([
      ['build/a', false],
      ['build/b', false],
      ['build/zed', true],
    ])
  })

  it('tells bar kinds apart', () => {
    expect(barKind(job('a', 0, 1, 'failed'))).toBe('failed')
    expect(barKind(job('a', 0, null, 'running'))).toBe('running')
    expect(barKind(job('a', 0, null, 'local'))).toBe('local')
    expect(barKind(job('a', 0, 1, 'done'))).toBe('done')
    expect(barKind(job('a', 0, 1, 'done', { client: 'a', metrics: {} }))).toBe('local')
  })
})

describe('timeTicks', () => {
  it('picks round steps inside the window', () => {
    const t = timeTicks({ from: 1003, to: 1063 })
    expect(t.length).toBeGreaterThan(2)
    expect(t.length).toBeLessThanOrEqual(8)
    expect(t[0]).toBeGreaterThanOrEqual(1003)
    expect(t[t.length - 1]).toBeLessThanOrEqual(1063)
    expect(t[1] - t[0]).toBe(10)
    expect(timeTicks({ from: 0, to: 900 })[1]).toBe(120)
    expect(timeTicks({ from: 0, to: 900 }, 4)[1]).toBe(300)
  })
})

describe('timeline labels and windows (issue 12)', () => {
  it('cuts host names in the middle so that two stay apart', async () => {
    const { middleTruncate } = await import('../src/lib/gantt')
    const a = middleTruncate('demo-remote1', 9)
    const b = middleTruncate('demo-remote2', 9)
    expect(a).not.toBe(b)
    expect(a).toHaveLength(9)
    expect(a.endsWith('1')).toBe(true)
    expect(middleTruncate('short', 9)).toBe('short')
  })
  it('names files by their base name and measures them', async () => {
    const { fileLabel, labelWidth } = await import('../src/lib/gantt')
    expect(fileLabel('/work/src/unit1.c')).toBe('unit1.c')
    expect(labelWidth('unit1.c')).toBeGreaterThan(40)
  })
  it('offers an hour only when the ring reaches back', async () => {
    const { windows } = await import('../src/lib/gantt')
    const fresh = windows([{ started: 990, ended: 995 }], 1000)
    expect(fresh.find((w) => w.s === 3600)?.covered).toBe(false)
    expect(fresh.find((w) => w.s === 900)?.covered).toBe(true)
    const old = windows([{ started: 1000 - 3000, ended: null }], 1000)
    expect(old.find((w) => w.s === 3600)?.covered).toBe(true)
  })
})
