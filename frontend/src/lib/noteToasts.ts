// A notification from the stream as the operator sees it: a toast (coalesced per subject; a
// flapping note's update changes its toast's count in place) and, when the page is hidden,
// a browser notification — neither for a muted subject (lib/mutes.ts).

import { watch } from 'vue'
import { notifyBrowser } from './browserNotes'
import { mutes } from './mutes'
import type { FleetStore } from './store'
import { toaster, type Severity } from './toasts'
import type { Note } from './types'

/** Toast `note`; true when it is news (not muted, not an update of a note already told). */
export function toastNote(note: Note): boolean {
  if (mutes.mutedBy(note)) return false
  const severity: Severity = note.severity === 'error' ? 'error' : note.severity === 'warning' ? 'warning' : 'info'
  const key = `note:${note.subject.id}`
  const count = note.kind === 'flapping' ? note.count : undefined
  if (note.updated) {
    // Only an update of a toast still on screen: a flapper that flaps for an hour does
    // not keep one there for an hour (or raise a new one every few seconds).
    if (toaster.toasts.value.some((t) => t.key === key)) {
      toaster.show(note.title, { key, severity, text: note.text, note, count, ttl: ttlLeft(key, severity) })
    }
    return false
  }
  toaster.show(note.title, { key, severity, text: note.text, note, count })
  notifyBrowser(note)
  return true
}

/** What is left of a toast's time (an update does not extend it). */
function ttlLeft(key: string, severity: Severity): number {
  const toast = toaster.toasts.value.find((t) => t.key === key)
  const left = toast ? toast.expires - Date.now() : toaster.ttl
  return Math.max(500, severity === 'error' ? left / 2 : left) // show() doubles an error's
}

/** Toast the store's notes from now on, with the mutes of its hub; `news` on each new one. */
export function startNoteToasts(fleet: FleetStore, news: () => void): () => void {
  const stopWatch = watch(fleet.name, (name) => mutes.load(name), { immediate: true })
  const stopNotes = fleet.onNote((note) => {
    if (toastNote(note)) news()
  })
  return () => {
    stopWatch()
    stopNotes()
  }
}
