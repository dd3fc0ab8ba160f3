// One confirmation dialog for the whole page: `ask()` opens it and resolves with the
// user's answer (and the action's parameters, when it has any).

import { shallowRef } from 'vue'
import type { ParamSpec } from './types'

export interface ConfirmRequest {
  title: string
  text: string
  /** Lines listing what will be hit (target ids), shown in a scroll box. */
  items?: string[]
  danger?: boolean
  confirmLabel?: string
  params?: ParamSpec[]
  resolve: (answer: { params: Record<string, unknown> } | null) => void
}

export const pending = shallowRef<ConfirmRequest | null>(null)

export function ask(req: Omit<ConfirmRequest, 'resolve'>): Promise<{ params: Record<string, unknown> } | null> {
  pending.value?.resolve(null)
  return new Promise((resolve) => {
    pending.value = { ...req, resolve }
  })
}

export function answer(value: { params: Record<string, unknown> } | null): void {
  const req = pending.value
  pending.value = null
  req?.resolve(value)
}
