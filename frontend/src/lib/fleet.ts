// The one store of the page, fed by the one stream.

import { fetchNotes, streamUrl } from './api'
import { session } from './session'
import { FleetStore } from './store'
import { StreamClient } from './stream'

export const fleet = new FleetStore()

let client: StreamClient | null = null

/** Connect the store to the hub (once); notes missed while away are fetched on each (re)connect. */
export function connectFleet(): StreamClient {
  if (client) return client
  client = new StreamClient(
    {
      snapshot: (frame) => fleet.applySnapshot(frame),
      delta: (frame) => fleet.applyDelta(frame),
      note: (frame) => {
        const { t: _t, ...note } = frame
        fleet.addNote(note)
      },
      status: (status, detail) => {
        fleet.connection.status = status
        fleet.connection.attempt = detail.attempt
        fleet.connection.retryIn = detail.retryIn
        fleet.connection.since = Date.now()
        if (status === 'live') {
          void loadNotes()
          if (session.state === 'unknown') void session.check()
        } else if (status === 'reconnecting') {
          // A refused handshake (401) looks like any failed connection to a browser: ask
          // /api/me, whose 401 ends the session (the login page; the stream stops).
          void session.check()
        }
      },
    },
    {
      url: () => streamUrl(),
      position: () => (fleet.seq >= 0 ? { seq: fleet.seq, epoch: fleet.epoch } : null),
      closed: (code) => {
        if (code !== CREDENTIALS_GONE) return true
        session.ended()
        return false
      },
    },
  )
  client.start()
  return client
}

/** The hub's close code when the stream's session or token ends (web/auth.py). */
export const CREDENTIALS_GONE = 4401

/** Stop the stream (logged out): the next `connectFleet` starts from a snapshot. */
export function disconnectFleet(): void {
  client?.stop()
  client = null
  fleet.seq = -1
  fleet.epoch = ''
  fleet.notes.value = [] // the next account may see fewer sources
  fleet.connection.status = 'connecting'
}

async function loadNotes(): Promise<void> {
  try {
    fleet.setNotes(await fetchNotes())
  } catch {
    /* the stream's banner already says the hub is away */
  }
}

export function useFleet(): FleetStore {
  return fleet
}
