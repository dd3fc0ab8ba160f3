// Mutes and snoozes of notifications (issue 12): a process, a group, a host or a source,
// for 1 h, 8 h, until tomorrow morning, or until unmuted. A muted subject raises no toast
// and no browser notification; its notes are still listed (dimmed). Kept in localStorage,
// one list per hub name. The pure logic is here (tests/mutes.test.ts); `mutes` below is
// the page's reactive copy.

import { shallowRef } from 'vue'
import type { Note } from './types'

export type MuteScope = 'process' | 'group' | 'node' | 'source'

export interface Mute {
  scope: MuteScope
  /** The process, node or source id; a group is `SOURCE:GROUP`. */
  id: string
  /** ms since the epoch; null: until unmuted. */
  until: number | null
  /** When it was made (ms). */
  at: number
}

export type MuteFor = '1h' | '8h' | 'tomorrow' | 'forever'

export const MUTE_CHOICES: { key: MuteFor; label: string }[] = [
  { key: '1h', label: '1 hour' },
  { key: '8h', label: '8 hours' },
  { key: 'tomorrow', label: 'Until tomorrow' },
  { key: 'forever', label: 'Until unmuted' },
]

/** The hour (local time) "until tomorrow" ends at. */
export const TOMORROW_HOUR = 8

/** When a mute made at `now` for `choice` ends (null: never, until unmuted). */
export function untilFor(choice: MuteFor, now: number): number | null {
  if (choice === '1h') return now + 3_600_000
  if (choice === '8h') return now + 8 * 3_600_000
  if (choice === 'forever') return null
  const d = new Date(now)
  d.setDate(d.getDate() + 1)
  d.setHours(TOMORROW_HOUR, 0, 0, 0)
  return d.getTime()
}

export interface MuteTarget {
  scope: MuteScope
  id: string
  label: string
}

type NoteLike = Pick<Note, 'source' | 'subject'>

/** The group id (`SOURCE:GROUP`) of a process note, or null. */
export function groupOf(note: NoteLike): string | null {
  if (note.subject?.kind !== 'process' || !note.source) return null
  const prefix = `${note.source}:`
  if (!note.subject.id.startsWith(prefix)) return null
  const group = note.subject.id.slice(prefix.length).split(':')[0]
  return group ? `${note.source}:${group}` : null
}

/** What a note's subject can be muted as, narrowest first. */
export function targetsOf(note: NoteLike): MuteTarget[] {
  const out: MuteTarget[] = []
  const { kind, id } = note.subject ?? { kind: '', id: '' }
  if (kind === 'process' && id) out.push({ scope: 'process', id, label: `process ${id}` })
  const group = groupOf(note)
  if (group) out.push({ scope: 'group', id: group, label: `group ${group}` })
  if (kind === 'node' && id) out.push({ scope: 'node', id, label: `host ${id}` })
  if (note.source) out.push({ scope: 'source', id: note.source, label: `source ${note.source}` })
  return out
}

export function isActive(mute: Mute, now: number): boolean {
  return mute.until === null || mute.until > now
}

/** Does `mute` cover `note`? (Whether it is still active is `isActive`'s question.) */
export function covers(mute: Mute, note: NoteLike): boolean {
  const subject = note.subject ?? { kind: '', id: '' }
  switch (mute.scope) {
    case 'source':
      return note.source === mute.id
    case 'group':
      return subject.kind === 'process' && groupOf(note) === mute.id
    case 'process':
      return subject.kind === 'process' && subject.id === mute.id
    case 'node':
      return subject.kind === 'node' && subject.id === mute.id
  }
}

/** The active mute covering `note`, if any. */
export function mutedBy(mutes: readonly Mute[], note: NoteLike, now: number): Mute | undefined {
  return mutes.find((m) => isActive(m, now) && covers(m, note))
}

/** `mutes` with `mute` in it (replacing one of the same scope and id). */
export function withMute(mutes: readonly Mute[], mute: Mute): Mute[] {
  return mutes.filter((m) => !(m.scope === mute.scope && m.id === mute.id)).concat(mute)
}

export function withoutMute(mutes: readonly Mute[], scope: MuteScope, id: string): Mute[] {
  return mutes.filter((m) => !(m.scope === scope && m.id === id))
}

/** Only the mutes still active at `now`. */
export function prune(mutes: readonly Mute[], now: number): Mute[] {
  return mutes.filter((m) => isActive(m, now))
}

export function storageKey(hub: string): string {
  return `fleetwatch.mutes.${hub}`
}

const SCOPES: readonly string[] = ['process', 'group', 'node', 'source']

/** Parse a stored list; anything malformed is dropped (never throws). */
export function parseMutes(text: string | null): Mute[] {
  if (!text) return []
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch {
    return []
  }
  if (!Array.isArray(data)) return []
  return data.filter(
    (m): m is Mute =>
      typeof m === 'object' &&
      m !== null &&
      SCOPES.includes((m as Mute).scope) &&
      typeof (m as Mute).id === 'string' &&
      ((m as Mute).until === null || typeof (m as Mute).until === 'number') &&
      typeof (m as Mute).at === 'number',
  )
}

interface Storage {
  getItem(key: string): string | null
  setItem(key: string, value: string): void
  removeItem(key: string): void
}

/** The mutes of one hub, in a storage (localStorage), pruned as they expire. */
export class MuteStore {
  readonly list = shallowRef<Mute[]>([])
  private hub = ''

  constructor(
    private readonly storage: Storage | null = typeof localStorage === 'undefined' ? null : localStorage,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** Use the mutes remembered for `hub` (called when the hub's name is known). */
  load(hub: string): void {
    this.hub = hub
    this.list.value = prune(parseMutes(this.storage?.getItem(storageKey(hub)) ?? null), this.now())
  }

  mute(target: Pick<MuteTarget, 'scope' | 'id'>, choice: MuteFor): Mute {
    const now = this.now()
    const mute: Mute = { scope: target.scope, id: target.id, until: untilFor(choice, now), at: now }
    this.save(withMute(prune(this.list.value, now), mute))
    return mute
  }

  unmute(scope: MuteScope, id: string): void {
    this.save(withoutMute(this.list.value, scope, id))
  }

  /** The active mute covering `note`, if any. */
  mutedBy(note: NoteLike): Mute | undefined {
    return mutedBy(this.list.value, note, this.now())
  }

  /** Active mutes, soonest to end first (until unmuted last). */
  active(): Mute[] {
    const now = this.now()
    return prune(this.list.value, now).sort((a, b) => (a.until ?? Infinity) - (b.until ?? Infinity))
  }

  private save(list: Mute[]): void {
    this.list.value = list
    if (!this.storage) return
    if (list.length) this.storage.setItem(storageKey(this.hub), JSON.stringify(list))
    else this.storage.removeItem(storageKey(this.hub))
  }
}

export const mutes = new MuteStore()
