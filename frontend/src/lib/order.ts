// Stable orders (issue 12): what a view lists must not move when a state changes.
import type { Source } from './types'

const KIND_ORDER: Record<string, number> = { supervisor: 0, icecream: 1, piwheels: 2 }

/** Sources by kind (supervisors, clusters, farms, others), then name, then id. */
export function bySourceOrder(a: Pick<Source, 'kind' | 'name' | 'id'>, b: Pick<Source, 'kind' | 'name' | 'id'>): number {
  return (KIND_ORDER[a.kind] ?? 9) - (KIND_ORDER[b.kind] ?? 9) || a.name.localeCompare(b.name, undefined, { numeric: true }) || a.id.localeCompare(b.id)
}
