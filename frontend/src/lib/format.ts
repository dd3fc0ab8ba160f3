// Small text helpers shared by the views.

/** "3 s", "4 min", "2 h 5 min", "3 d 4 h" for a number of seconds. */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '–'
  const s = Math.floor(seconds)
  if (s < 60) return `${s} s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m} min ${s % 60} s`
  const h = Math.floor(m / 60)
  if (h < 24) return `${h} h ${m % 60} min`
  const d = Math.floor(h / 24)
  return `${d} d ${h % 24} h`
}

/** "12:03:04" style uptime (as supervisord prints it, days prefixed). */
export function clock(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '–'
  const s = Math.floor(seconds)
  const d = Math.floor(s / 86400)
  const hh = String(Math.floor((s % 86400) / 3600))
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0')
  const ss = String(s % 60).padStart(2, '0')
  return `${d ? `${d} d ` : ''}${hh}:${mm}:${ss}`
}

/** "5 s ago" from a Unix time in seconds; `now` in ms. */
export function ago(ts: number | null | undefined, now = Date.now()): string {
  if (ts === null || ts === undefined || !ts) return 'never'
  const s = now / 1000 - ts
  return s < 1 ? 'just now' : `${duration(s)} ago`
}

export function timestamp(ts: number | null | undefined): string {
  if (!ts) return '–'
  const d = new Date(ts * 1000)
  return d.toLocaleString(undefined, { hour12: false })
}

export function timeOfDay(ts: number | null | undefined): string {
  if (!ts) return '–'
  return new Date(ts * 1000).toLocaleTimeString(undefined, { hour12: false })
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '–'
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let i = 0
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024
    i += 1
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`
}

export function ms(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '–'
  return n < 1000 ? `${Math.round(n)} ms` : `${(n / 1000).toFixed(n < 10000 ? 2 : 1)} s`
}
