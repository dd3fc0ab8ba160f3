// The one store of the page, fed by the one stream.

import { fetchNotes, streamUrl } from './api'
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
        if (status === 'live') void loadNotes()
      },
    },
    {
      url: () => streamUrl(),
      position: () => (fleet.seq >= 0 ? { seq: fleet.seq, epoch: fleet.epoch } : null),
    },
  )
  client.start()
  return client
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
