import { describe, expect, it } from 'vitest'
import { Toaster } from '../src/lib/toasts'

/** A Toaster on a fake clock; `timers` records what it asked to be woken for. */
function make(maxVisible = 3, ttl = 1000) {
  const clock = { t: 10_000 }
  const timers: { fn: () => void; at: number }[] = []
  const toaster = new Toaster(
    maxVisible,
    ttl,
    () => clock.t,
    (fn, ms) => {
      timers.push({ fn, at: clock.t + ms })
      return null
    },
  )
  /** Move the clock and fire the latest timer if it is due (earlier ones were re-armed). */
  const advance = (ms: number) => {
    clock.t += ms
    const last = timers.at(-1)
    if (last && last.at <= clock.t) {
      timers.length = 0
      last.fn()
    }
  }
  return { toaster, clock, timers, advance }
}

describe('Toaster', () => {
  it('shows a toast with defaults', () => {
    const { toaster, clock } = make()
    const t = toaster.show('Saved')
    expect(t).toMatchObject({ title: 'Saved', severity: 'info', count: 1, text: '', key: 'info:Saved', at: clock.t, expires: clock.t + 1000 })
    expect(toaster.toasts.value).toEqual([t])
  })

  it('coalesces toasts with the same key and counts them', () => {
    const { toaster, clock } = make()
    const first = toaster.show('sv1:flapper exited', { key: 'note:sv1:flapper', severity: 'warning', text: 'exit 1' })
    clock.t += 300
    const second = toaster.show('sv1:flapper FATAL', { key: 'note:sv1:flapper', severity: 'error', text: 'gave up' })
    clock.t += 300
    const third = toaster.show('sv1:flapper running', { key: 'note:sv1:flapper', severity: 'info', text: 'ok' })
    expect(toaster.toasts.value).toHaveLength(1)
    expect(second.id).toBe(first.id)
    expect(third).toMatchObject({
      id: first.id,
      count: 3,
      title: 'sv1:flapper running', // the latest text
      text: 'ok',
      severity: 'error', // the worst severity seen sticks
      at: clock.t,
    })
    expect(toaster.toasts.value[0]).toEqual(third)
    // a different key is another toast
    toaster.show('other', { key: 'note:other' })
    expect(toaster.toasts.value.map((t) => t.count)).toEqual([3, 1])
  })

  it('without a key, the severity and title are the key', () => {
    const { toaster } = make()
    toaster.show('Stop: 2 ok', { severity: 'success' })
    toaster.show('Stop: 2 ok', { severity: 'success' })
    toaster.show('Stop: 2 ok', { severity: 'error' })
    expect(toaster.toasts.value.map((t) => [t.key, t.count])).toEqual([
      ['success:Stop: 2 ok', 2],
      ['error:Stop: 2 ok', 1],
    ])
  })

  it('shows at most maxVisible, newest kept, and counts the overflow', () => {
    const { toaster } = make(3)
    for (let i = 1; i <= 5; i++) toaster.show(`t${i}`)
    expect(toaster.toasts.value.map((t) => t.title)).toEqual(['t3', 't4', 't5'])
    expect(toaster.overflow.value).toBe(2)
    // coalescing into a visible one does not overflow
    toaster.show('t4')
    expect(toaster.overflow.value).toBe(2)
    expect(toaster.toasts.value).toHaveLength(3)
    // dismissing all resets the overflow count
    for (const t of toaster.toasts.value) toaster.dismiss(t.id)
    expect(toaster.toasts.value).toEqual([])
    expect(toaster.overflow.value).toBe(0)
  })

  it('dismiss removes only that toast; clear removes all', () => {
    const { toaster } = make(3)
    const a = toaster.show('a')
    toaster.show('b')
    toaster.show('c')
    toaster.show('d')
    toaster.dismiss(a.id) // already pushed out: no change
    expect(toaster.toasts.value.map((t) => t.title)).toEqual(['b', 'c', 'd'])
    toaster.dismiss(toaster.toasts.value[1].id)
    expect(toaster.toasts.value.map((t) => t.title)).toEqual(['b', 'd'])
    expect(toaster.overflow.value).toBe(1)
    toaster.clear()
    expect(toaster.toasts.value).toEqual([])
    expect(toaster.overflow.value).toBe(0)
  })

  it('expires toasts after their ttl; an update restarts the ttl', () => {
    const { toaster, advance, timers } = make(4, 1000)
    toaster.show('a')
    advance(600)
    toaster.show('b')
    expect(timers.at(-1)?.at).toBeGreaterThanOrEqual(10_000 + 1000) // armed for the first expiry
    advance(500) // t = +1100: a expired, b not
    expect(toaster.toasts.value.map((t) => t.title)).toEqual(['b'])
    toaster.show('b') // refreshed at +1100: expires at +2100
    advance(900)
    expect(toaster.toasts.value.map((t) => t.title)).toEqual(['b'])
    advance(200)
    expect(toaster.toasts.value).toEqual([])
    expect(toaster.overflow.value).toBe(0)
  })

  it('errors stay twice as long', () => {
    const { toaster, clock } = make(4, 1000)
    toaster.show('ok', { severity: 'success' })
    toaster.show('bad', { severity: 'error' })
    toaster.show('custom', { severity: 'error', ttl: 300 })
    expect(toaster.toasts.value.map((t) => t.expires - clock.t)).toEqual([1000, 2000, 600])
    clock.t += 1500
    toaster.expire()
    expect(toaster.toasts.value.map((t) => t.title)).toEqual(['bad'])
    clock.t += 501
    toaster.expire()
    expect(toaster.toasts.value).toEqual([])
  })

  it('expire() keeps the same array when nothing expired (no needless repaint)', () => {
    const { toaster } = make()
    toaster.show('a')
    const before = toaster.toasts.value
    toaster.expire()
    expect(toaster.toasts.value).toBe(before)
  })
})

describe('Toaster, collapsing and in-place updates', () => {
  it('keeps 3 by default and collapses the rest into "+N more"', () => {
    const toaster = new Toaster(undefined, 1000, () => 0, () => null)
    for (let i = 1; i <= 7; i++) toaster.show(`p${i} exited`, { key: `note:p${i}`, severity: 'warning' })
    expect(toaster.toasts.value.map((t) => t.title)).toEqual(['p5 exited', 'p6 exited', 'p7 exited'])
    expect(toaster.overflow.value).toBe(4)
  })

  it('a count given (a flapping note) replaces the coalesced count; the note rides along', () => {
    const toaster = new Toaster(3, 1000, () => 0, () => null)
    const note = { id: 'n7', ts: 1, severity: 'warning', source: 's', subject: { kind: 'process', id: 's:g:p' }, title: 'p flapping', text: '', kind: 'flapping', count: 5 }
    const first = toaster.show('p flapping', { key: 'note:s:g:p', count: 5, note })
    const again = toaster.show('p flapping', { key: 'note:s:g:p', count: 7, note: { ...note, count: 7, updated: true } })
    expect(again.id).toBe(first.id)
    expect(toaster.toasts.value).toHaveLength(1)
    expect(again.count).toBe(7)
    expect(again.note?.count).toBe(7)
  })

  it('dismissWhere drops the toasts picked (a muted subject) and resets the overflow when empty', () => {
    const toaster = new Toaster(2, 1000, () => 0, () => null)
    toaster.show('a', { key: 'note:a' })
    toaster.show('b', { key: 'note:b' })
    toaster.show('c', { key: 'note:c' })
    toaster.dismissWhere((t) => t.key === 'note:b')
    expect(toaster.toasts.value.map((t) => t.key)).toEqual(['note:c'])
    expect(toaster.overflow.value).toBe(1)
    toaster.dismissWhere(() => true)
    expect(toaster.overflow.value).toBe(0)
  })
})
