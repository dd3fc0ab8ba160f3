import { describe, expect, it } from 'vitest'
import { buildCards } from '../src/lib/cards'
import type { Process, Source } from '../src/lib/types'

function src(id: string, status = 'online'): Source {
  return { id, kind: 'supervisor', name: id, url: '', status, since: 0, error: null, version: '', actions: [], info: {} } as unknown as Source
}
function proc(source: string, group: string, name: string, state = 'RUNNING'): Process {
  return { id: `${source}:${group}:${name}`, source, group, name, state, pid: 1, started: 0, stopped: 0, exitstatus: 0, description: '', spawnerr: '' } as unknown as Process
}

describe("buildCards (Multivisor's card layout)", () => {
  const sources = new Map([src('sv2'), src('sv10', 'offline'), src('sv1')].map((s) => [s.id, s]))
  const procs = [proc('sv2', 'web', 'web'), proc('sv1', 'web', 'web', 'FATAL'), proc('sv1', 'db', 'db')]

  it('makes a card per supervisor in a stable order, empty ones included when asked', () => {
    const cards = buildCards(procs, sources, 'source', true)
    expect(cards.map((c) => c.key)).toEqual(['sv1', 'sv2', 'sv10'])
    expect(cards[0].processes.map((p) => p.id)).toEqual(['sv1:web:web', 'sv1:db:db'])
    expect(cards[0].problem).toBe(true) // a FATAL process
    expect(cards[2].processes).toEqual([])
    expect(cards[2].problem).toBe(true) // offline
    expect(buildCards(procs, sources, 'source', false).map((c) => c.key)).toEqual(['sv1', 'sv2'])
  })

  it('makes a card per program group across every supervisor', () => {
    const cards = buildCards(procs, sources, 'group')
    expect(cards.map((c) => c.key)).toEqual(['db', 'web'])
    expect(cards[1].processes.map((p) => p.source)).toEqual(['sv2', 'sv1'])
    expect(cards[1].counts).toEqual({ RUNNING: 1, FATAL: 1 })
  })
})
