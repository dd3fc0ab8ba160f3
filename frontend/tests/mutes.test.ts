import { describe, expect, it } from 'vitest'
import {
  MuteStore,
  TOMORROW_HOUR,
  covers,
  groupOf,
  mutedBy,
  parseMutes,
  prune,
  storageKey,
  targetsOf,
  untilFor,
  withMute,
  withoutMute,
  type Mute,
} from '../src/lib/mutes'

const H = 3_600_000
const proc = (id: string, source = id.split(':')[0]) => ({ source, subject: { kind: 'process', id } })
const node = (id: string, source = id.split('/')[0]) => ({ source, subject: { kind: 'node', id } })
const src = (id: string) => ({ source: id, subject: { kind: 'source', id } })

class MemoryStorage {
  data = new Map<string, string>()
  getItem(k: string) {
    return this.data.get(k) ?? null
  }
  setItem(k: string, v: string) {
    this.data.set(k, v)
  }
  removeItem(k: string) {
    this.data.delete(k)
  }
}

describe('mutes', () => {
  it('snoozes for 1 h, 8 h, until tomorrow morning, or until unmuted', () => {
    const now = new Date(2026, 11, 2, 22, 30).getTime()
    expect(untilFor('1h', now)).toBe(now + H)
    expect(untilFor('8h', now)).toBe(now + 8 * H)
    expect(untilFor('forever', now)).toBeNull()
    expect(untilFor('tomorrow', now)).toBe(new Date(2026, 11, 3, TOMORROW_HOUR).getTime())
    // just after midnight, "tomorrow" is still the next day's morning
    const late = new Date(2026, 11, 3, 0, 10).getTime()
    expect(untilFor('tomorrow', late)).toBe(new Date(2026, 11, 4, TOMORROW_HOUR).getTime())
  })

  it('finds the group of a process note and what a note can be muted as', () => {
    expect(groupOf(proc('sv1:web:web_01'))).toBe('sv1:web')
    expect(groupOf(node('lab/h1'))).toBeNull()
    expect(targetsOf(proc('sv1:web:web_01')).map((t) => [t.scope, t.id])).toEqual([
      ['process', 'sv1:web:web_01'],
      ['group', 'sv1:web'],
      ['source', 'sv1'],
    ])
    expect(targetsOf(node('lab/h1')).map((t) => [t.scope, t.id])).toEqual([
      ['node', 'lab/h1'],
      ['source', 'lab'],
    ])
    expect(targetsOf(src('piw')).map((t) => t.scope)).toEqual(['source'])
  })

  it('a mute covers its process, its group or its source, and nothing else', () => {
    const m = (scope: Mute['scope'], id: string): Mute => ({ scope, id, until: null, at: 0 })
    expect(covers(m('process', 'sv1:g:a'), proc('sv1:g:a'))).toBe(true)
    expect(covers(m('process', 'sv1:g:a'), proc('sv1:g:ab'))).toBe(false)
    expect(covers(m('group', 'sv1:g'), proc('sv1:g:a'))).toBe(true)
    expect(covers(m('group', 'sv1:g'), proc('sv1:gg:a'))).toBe(false)
    expect(covers(m('group', 'sv1:g'), proc('sv2:g:a'))).toBe(false)
    expect(covers(m('source', 'sv1'), proc('sv1:g:a'))).toBe(true)
    expect(covers(m('source', 'sv1'), src('sv1'))).toBe(true)
    expect(covers(m('source', 'sv1'), src('sv10'))).toBe(false)
    expect(covers(m('node', 'lab/h1'), node('lab/h1'))).toBe(true)
    expect(covers(m('node', 'lab/h1'), proc('lab/h1'))).toBe(false)
  })

  it('an expired snooze mutes nothing and is pruned', () => {
    const mutes: Mute[] = [
      { scope: 'process', id: 'sv1:g:a', until: 1000, at: 0 },
      { scope: 'source', id: 'sv2', until: null, at: 0 },
    ]
    expect(mutedBy(mutes, proc('sv1:g:a'), 999)?.id).toBe('sv1:g:a')
    expect(mutedBy(mutes, proc('sv1:g:a'), 1000)).toBeUndefined()
    expect(mutedBy(mutes, proc('sv2:g:a'), 1e15)?.id).toBe('sv2')
    expect(prune(mutes, 1000).map((m) => m.id)).toEqual(['sv2'])
  })

  it('one mute per scope and id; unmute removes it', () => {
    let list = withMute([], { scope: 'process', id: 'a', until: 5, at: 1 })
    list = withMute(list, { scope: 'group', id: 'a', until: 5, at: 1 })
    list = withMute(list, { scope: 'process', id: 'a', until: null, at: 2 })
    expect(list).toEqual([
      { scope: 'group', id: 'a', until: 5, at: 1 },
      { scope: 'process', id: 'a', until: null, at: 2 },
    ])
    expect(withoutMute(list, 'process', 'a')).toEqual([{ scope: 'group', id: 'a', until: 5, at: 1 }])
  })

  it('parses what was stored, dropping anything malformed', () => {
    expect(parseMutes(null)).toEqual([])
    expect(parseMutes('not json')).toEqual([])
    expect(parseMutes('{"scope":"process"}')).toEqual([])
    const good = { scope: 'group', id: 'sv1:g', until: null, at: 3 }
    expect(parseMutes(JSON.stringify([good, { scope: 'planet', id: 'x', until: null, at: 1 }, { scope: 'source', id: 1 }, null]))).toEqual([good])
  })

  it('is remembered per hub name across reloads', () => {
    const storage = new MemoryStorage()
    const clock = { t: 1_000_000 }
    const a = new MuteStore(storage, () => clock.t)
    a.load('ACME')
    a.mute({ scope: 'process', id: 'sv1:g:p' }, '1h')
    a.mute({ scope: 'source', id: 'sv2' }, 'forever')
    expect(storage.getItem(storageKey('ACME'))).toContain('sv1:g:p')
    expect(a.mutedBy(proc('sv1:g:p'))).toBeDefined()

    const reloaded = new MuteStore(storage, () => clock.t)
    reloaded.load('ACME')
    expect(reloaded.active().map((m) => m.id)).toEqual(['sv1:g:p', 'sv2']) // soonest to end first
    expect(reloaded.mutedBy(proc('sv1:g:p'))).toBeDefined()
    // another hub has its own list
    const other = new MuteStore(storage, () => clock.t)
    other.load('OTHER')
    expect(other.active()).toEqual([])
    expect(other.mutedBy(proc('sv1:g:p'))).toBeUndefined()
    // the snooze ends; unmuting the last one empties the storage
    clock.t += H
    expect(reloaded.mutedBy(proc('sv1:g:p'))).toBeUndefined()
    reloaded.load('ACME')
    expect(reloaded.active().map((m) => m.id)).toEqual(['sv2'])
    reloaded.unmute('source', 'sv2')
    expect(storage.getItem(storageKey('ACME'))).toBeNull()
  })
})
