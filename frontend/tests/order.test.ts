import { describe, expect, it } from 'vitest'
import { bySourceOrder } from '../src/lib/order'

const s = (id: string, kind: string, name = id) => ({ id, kind, name })

describe('bySourceOrder (issue 12: overview cards keep their place)', () => {
  it('orders by kind, then name, naturally', () => {
    const list = [s('piw', 'piwheels'), s('sv10', 'supervisor'), s('ice', 'icecream'), s('sv2', 'supervisor'), s('x', 'other')]
    expect(list.sort(bySourceOrder).map((x) => x.id)).toEqual(['sv2', 'sv10', 'ice', 'piw', 'x'])
  })
  it('does not depend on status', () => {
    const a = { ...s('a', 'supervisor'), status: 'offline' }
    const b = { ...s('b', 'supervisor'), status: 'online' }
    expect([b, a].sort(bySourceOrder)[0]).toBe(a)
    expect([a, b].sort(bySourceOrder)[0]).toBe(a)
  })
})
