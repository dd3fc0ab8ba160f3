import { describe, expect, it } from 'vitest'
import { formatAt, parseAt, segments, toLocalInput } from '../src/lib/history'
import type { Process } from '../src/lib/types'

const running = { state: 'RUNNING' } as Process

describe('segments (the drawer strip)', () => {
  it('starts from the state at since and cuts at each change', () => {
    const s = segments({ since: 100, until: 200, initial: running, changes: [{ ts: 120, state: 'STOPPED' }, { ts: 150, state: 'RUNNING' }] })
    expect(s).toEqual([
      { state: 'RUNNING', from: 100, to: 120 },
      { state: 'STOPPED', from: 120, to: 150 },
      { state: 'RUNNING', from: 150, to: 200 },
    ])
  })
  it('clips changes to the range, merges repeats, and marks what is unknown', () => {
    const s = segments({ since: 100, until: 200, initial: null, changes: [{ ts: 150, state: 'RUNNING' }, { ts: 160, state: 'RUNNING' }, { ts: 250, state: 'FATAL' }] })
    expect(s).toEqual([
      { state: 'none', from: 100, to: 150 },
      { state: 'RUNNING', from: 150, to: 200 },
    ])
    expect(segments({ since: 0, until: 10, initial: running, changes: [] })).toEqual([{ state: 'RUNNING', from: 0, to: 10 }])
  })
})

describe('times', () => {
  it('reads seconds and ISO, and round-trips at= in the URL', () => {
    expect(parseAt('1764645120')).toBe(1764645120)
    expect(parseAt('2026-12-02T03:12:00Z')).toBe(Date.UTC(2026, 11, 2, 3, 12) / 1000)
    expect(parseAt('nonsense')).toBeNull()
    expect(parseAt(null)).toBeNull()
    expect(parseAt(formatAt(1764645120.4))).toBe(1764645120)
  })
  it('writes a datetime-local value in local time', () => {
    const at = new Date(2026, 11, 2, 3, 12, 5).getTime() / 1000
    expect(toLocalInput(at)).toBe('2026-12-02T03:12:05')
    expect(parseAt(toLocalInput(at))).toBe(at)
  })
})
