// Multivisor's cards (issue 12): the processes view as a card per supervisor, or a card per
// program group across every supervisor. Pure: the component draws what this returns.
import { bySourceOrder } from './order'
import { compareText } from './processes'
import type { Process, Source } from './types'

export type CardsBy = 'source' | 'group'

export interface Card {
  key: string
  /** What the card is: one supervisor, or one program group over all of them. */
  kind: CardsBy
  title: string
  source?: Source
  processes: Process[]
  /** Processes per state, for the card's header. */
  counts: Record<string, number>
  /** The card needs a look: a process in a problem state, or its supervisor not online. */
  problem: boolean
}

const PROBLEM = new Set(['FATAL', 'BACKOFF', 'EXITED', 'UNKNOWN'])

/**
 * The cards for ``processes`` (already filtered and sorted: each card keeps their order).
 * By supervisor, every supervisor source gets a card, even with no process shown, when
 * ``allSources`` is set (nothing filtered); cards come in the overview's stable order.
 */
export function buildCards(processes: Process[], sources: Map<string, Source>, by: CardsBy, allSources = false): Card[] {
  const cards = new Map<string, Card>()
  const card = (key: string, title: string, source?: Source): Card => {
    let c = cards.get(key)
    if (!c) cards.set(key, (c = { key, kind: by, title, source, processes: [], counts: {}, problem: !!source && source.status !== 'online' }))
    return c
  }
  if (by === 'source' && allSources) {
    for (const s of sources.values()) if (s.kind === 'supervisor') card(s.id, s.name, s)
  }
  for (const p of processes) {
    const c = by === 'source' ? card(p.source, sources.get(p.source)?.name ?? p.source, sources.get(p.source)) : card(p.group, p.group)
    c.processes.push(p)
    c.counts[p.state] = (c.counts[p.state] ?? 0) + 1
    if (PROBLEM.has(p.state)) c.problem = true
  }
  const list = Array.from(cards.values())
  if (by === 'source') {
    list.sort((a, b) => (a.source && b.source ? bySourceOrder(a.source, b.source) : compareText(a.title, b.title)))
  } else {
    list.sort((a, b) => compareText(a.title, b.title))
  }
  return list
}
