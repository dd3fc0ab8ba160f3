// Optional browser notifications for warnings and errors, when the page is not in view.

import { ref } from 'vue'
import { mutes } from './mutes'
import type { Note } from './types'

const KEY = 'fleetwatch.browserNotifications'
export const browserNotes = ref(localStorage.getItem(KEY) === 'on')

export const browserNotesSupported = typeof window !== 'undefined' && 'Notification' in window

export async function setBrowserNotes(on: boolean): Promise<boolean> {
  if (on && browserNotesSupported && Notification.permission !== 'granted') {
    const answer = await Notification.requestPermission()
    if (answer !== 'granted') on = false
  }
  browserNotes.value = on
  localStorage.setItem(KEY, on ? 'on' : 'off')
  return on
}

const lastShown = new Map<string, number>()

/** Show `note` as a system notification (one per subject per minute: no floods). */
export function notifyBrowser(note: Note): void {
  if (!browserNotes.value || !browserNotesSupported || Notification.permission !== 'granted') return
  if (document.visibilityState === 'visible' || note.severity === 'info') return
  if (mutes.mutedBy(note)) return // muted or snoozed (lib/mutes.ts)
  const key = note.subject.id
  const now = Date.now()
  if (now - (lastShown.get(key) ?? 0) < 60000) return
  lastShown.set(key, now)
  new Notification(note.title, { body: note.text, tag: key })
}
