// The log viewer's buffer, as pure functions over plain data (no Vue, no DOM).
//
// The hub hands out windows of a log as `{text, offset, end, size, reset}`, where offset and
// end are exact byte offsets on UTF-8 character boundaries. The buffer keeps the text as a
// list of pieces (one per window read, merged now and then) so that following a log only
// ever appends DOM nodes, knows the byte offset of its first and last character, and trims
// whole lines from the front when it grows past `maxChars`.

import type { LogChunk } from './types'

/** About 2 MB of text at most (UTF-16 code units; the same as bytes for ASCII logs). */
export const MAX_CHARS = 2_000_000
/** Pieces beyond this are merged, so a long follow does not grow the DOM node count. */
export const MAX_PIECES = 48

export interface LogPiece {
  /** Unique within a buffer: the key of the piece's DOM node. */
  key: number
  /** Byte offset of the piece's first character in the log file. */
  offset: number
  text: string
  /** Bytes missing just before this piece (the log outran the reader); 0 normally. */
  gapBefore: number
}

export interface LogBuffer {
  pieces: LogPiece[]
  /** Byte offset of the first character, or null before anything was read. */
  start: number | null
  /** Byte offset just after the last character (where following reads on). */
  end: number
  /** The file's size as last reported. */
  size: number
  /** Total UTF-16 length of the text. */
  chars: number
  /** How often the log was found rotated or cleared. */
  resets: number
  nextKey: number
}

export type Outcome = 'init' | 'appended' | 'overlap' | 'gap' | 'stale' | 'reset'

export function emptyLog(): LogBuffer {
  return { pieces: [], start: null, end: 0, size: 0, chars: 0, resets: 0, nextKey: 1 }
}

// -- UTF-8 byte arithmetic -------------------------------------------------------------------

/**
 * The UTF-8 size of the character at index `i` of `s` and how many UTF-16 units it takes
 * (a surrogate pair is one 4-byte character; a lone surrogate counts as U+FFFD, 3 bytes,
 * as TextEncoder does).
 */
function charAt(s: string, i: number): [bytes: number, units: number] {
  const c = s.charCodeAt(i)
  if (c < 0x80) return [1, 1]
  if (c < 0x800) return [2, 1]
  if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
    const d = s.charCodeAt(i + 1)
    if (d >= 0xdc00 && d <= 0xdfff) return [4, 2]
  }
  return [3, 1]
}

/** UTF-8 length of a string in bytes. */
export function utf8Length(s: string): number {
  let n = 0
  for (let i = 0; i < s.length; ) {
    const [bytes, units] = charAt(s, i)
    n += bytes
    i += units
  }
  return n
}

/**
 * The string index just after the first `bytes` UTF-8 bytes of `s` (never inside a
 * surrogate pair; a count that ends inside a character rounds up to its end).
 */
export function indexAfterBytes(s: string, bytes: number): number {
  let n = 0
  let i = 0
  while (i < s.length && n < bytes) {
    const [size, units] = charAt(s, i)
    n += size
    i += units
  }
  return i
}

// -- building the buffer -----------------------------------------------------------------------

function piece(buf: LogBuffer, offset: number, text: string, gapBefore = 0): LogPiece {
  return { key: buf.nextKey++, offset, text, gapBefore }
}

function fresh(chunk: LogChunk, resets: number): LogBuffer {
  const buf: LogBuffer = { ...emptyLog(), resets }
  buf.start = chunk.offset
  buf.end = chunk.end
  buf.size = chunk.size
  if (chunk.text) {
    buf.pieces = [piece(buf, chunk.offset, chunk.text)]
    buf.chars = chunk.text.length
  }
  return buf
}

/**
 * Add a window read at or after the buffer's end (following). A window that repeats what
 * the buffer has is skipped (byte-exact, so nothing is doubled even across multi-byte
 * characters); one that starts past the end leaves a marked gap; `reset` (the log was
 * rotated or cleared) starts over with the window. Trims to `maxChars` from the front.
 * Returns a new buffer (the input is not modified) and what happened.
 */
export function appendChunk(
  buf: LogBuffer,
  chunk: LogChunk,
  maxChars: number = MAX_CHARS,
): { buf: LogBuffer; outcome: Outcome } {
  if (chunk.reset) return { buf: trim(fresh(chunk, buf.resets + 1), maxChars), outcome: 'reset' }
  if (buf.start === null) return { buf: trim(fresh(chunk, buf.resets), maxChars), outcome: 'init' }
  if (chunk.end <= buf.end) return { buf: { ...buf, size: chunk.size }, outcome: 'stale' }
  const out: LogBuffer = { ...buf, pieces: buf.pieces.slice(), size: chunk.size }
  let outcome: Outcome
  let text = chunk.text
  let offset = chunk.offset
  let gap = 0
  if (chunk.offset < buf.end) {
    const skip = indexAfterBytes(text, buf.end - chunk.offset)
    text = text.slice(skip)
    offset = buf.end
    outcome = 'overlap'
  } else if (chunk.offset > buf.end) {
    gap = chunk.offset - buf.end
    outcome = 'gap'
  } else {
    outcome = 'appended'
  }
  if (text || gap) {
    out.pieces.push(piece(out, offset, text, gap))
    out.chars += text.length
  }
  out.end = chunk.end
  return { buf: trim(compact(out), maxChars), outcome }
}

/**
 * Add a window read just before the buffer's start ("load earlier"). Overlap with what the
 * buffer has is cut off; a window ending before the start leaves a marked gap. Does not
 * trim (the next append does, from the front).
 */
export function prependChunk(buf: LogBuffer, chunk: LogChunk): LogBuffer {
  if (buf.start === null || chunk.reset) return fresh(chunk, buf.resets + (chunk.reset ? 1 : 0))
  if (chunk.offset >= buf.start) return buf
  let text = chunk.text
  if (chunk.end > buf.start) text = text.slice(0, indexAfterBytes(text, buf.start - chunk.offset))
  const out: LogBuffer = { ...buf, pieces: buf.pieces.slice(), size: Math.max(buf.size, chunk.size) }
  const gap = chunk.end < buf.start ? buf.start - chunk.end : 0
  if (gap && out.pieces.length) out.pieces[0] = { ...out.pieces[0], gapBefore: out.pieces[0].gapBefore + gap }
  out.pieces.unshift(piece(out, chunk.offset, text))
  out.chars += text.length
  out.start = chunk.offset
  return compact(out)
}

/** Merge the oldest pieces when there are too many (gaps stay separate pieces). */
export function compact(buf: LogBuffer, maxPieces: number = MAX_PIECES): LogBuffer {
  if (buf.pieces.length <= maxPieces) return buf
  const half = Math.ceil(buf.pieces.length / 2)
  const merged: LogPiece[] = []
  for (const p of buf.pieces.slice(0, half)) {
    const last = merged[merged.length - 1]
    // A merged piece gets a new key (-1 until numbered) so its DOM node is rebuilt.
    if (last && p.gapBefore === 0) merged[merged.length - 1] = { ...last, text: last.text + p.text, key: -1 }
    else merged.push(p)
  }
  let nextKey = buf.nextKey
  for (const [i, p] of merged.entries()) if (p.key === -1) merged[i] = { ...p, key: nextKey++ }
  return { ...buf, pieces: merged.concat(buf.pieces.slice(half)), nextKey }
}

/**
 * Drop text from the front until at most `maxChars` remain, cutting after a newline so the
 * first line shown is whole (unless a single line is longer than the slack allowed).
 */
export function trim(buf: LogBuffer, maxChars: number = MAX_CHARS): LogBuffer {
  if (buf.chars <= maxChars || buf.start === null) return buf
  let excess = buf.chars - maxChars
  const pieces = buf.pieces.slice()
  let chars = buf.chars
  // Whole pieces first.
  while (pieces.length > 1 && pieces[0].text.length <= excess) {
    excess -= pieces[0].text.length
    chars -= pieces[0].text.length
    pieces.shift()
  }
  const first = pieces[0]
  let cut = excess
  if (cut > 0) {
    const nl = first.text.indexOf('\n', cut - 1)
    // Prefer a line boundary, unless the line runs on for more than a tenth of the budget.
    if (nl >= 0 && nl + 1 - cut <= Math.max(4096, maxChars / 10)) cut = nl + 1
    else {
      const c = first.text.charCodeAt(cut)
      if (c >= 0xdc00 && c <= 0xdfff) cut += 1 // never split a surrogate pair
    }
    cut = Math.min(cut, first.text.length)
    pieces[0] = {
      key: buf.nextKey,
      offset: first.offset + utf8Length(first.text.slice(0, cut)),
      text: first.text.slice(cut),
      gapBefore: 0,
    }
    chars -= cut
  } else if (first.gapBefore) {
    pieces[0] = { ...first, gapBefore: 0 }
  }
  return {
    ...buf,
    pieces,
    chars,
    start: pieces[0].offset,
    nextKey: cut > 0 ? buf.nextKey + 1 : buf.nextKey,
  }
}

/** The whole text of the buffer. */
export function logText(buf: LogBuffer): string {
  return buf.pieces.length === 1 ? buf.pieces[0].text : buf.pieces.map((p) => p.text).join('')
}

/** Where "load earlier" reads: the `length` bytes before the start (null at the file's start). */
export function earlierWindow(buf: LogBuffer, length = 65536): { offset: number; length: number } | null {
  if (buf.start === null || buf.start <= 0) return null
  const offset = Math.max(0, buf.start - length)
  return { offset, length: buf.start - offset }
}

// -- search --------------------------------------------------------------------------------------

export interface Match {
  /** UTF-16 indices into the buffer's text: [start, end). */
  start: number
  end: number
}

export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** Every case-insensitive occurrence of `query` in `text` (at most `limit`), left to right. */
export function findMatches(text: string, query: string, limit = 10000): Match[] {
  if (!query) return []
  const re = new RegExp(escapeRegExp(query), 'giu')
  const out: Match[] = []
  let m: RegExpExecArray | null
  while ((m = re.exec(text)) !== null && out.length < limit) {
    if (m[0].length === 0) {
      re.lastIndex += 1
      continue
    }
    out.push({ start: m.index, end: m.index + m[0].length })
  }
  return out
}

/** The byte offset in the log of the character at string index `index` of the buffer's text. */
export function byteOffsetAt(buf: LogBuffer, index: number): number | null {
  if (buf.start === null) return null
  let base = 0
  for (const p of buf.pieces) {
    if (index <= base + p.text.length) return p.offset + utf8Length(p.text.slice(0, index - base))
    base += p.text.length
  }
  return buf.end
}

export interface Part {
  text: string
  /** Index of the match this part belongs to, or -1 for plain text. */
  match: number
}

/**
 * Each piece cut into plain and highlighted parts (a match spanning pieces is highlighted
 * in both). Pieces without matches come back as a single plain part.
 */
export function pieceParts(pieces: readonly LogPiece[], matches: readonly Match[]): Part[][] {
  const out: Part[][] = []
  let base = 0
  let mi = 0
  for (const p of pieces) {
    const end = base + p.text.length
    const parts: Part[] = []
    let at = base
    while (mi < matches.length && matches[mi].end <= base) mi += 1
    let j = mi
    while (j < matches.length && matches[j].start < end) {
      const s = Math.max(matches[j].start, base)
      const e = Math.min(matches[j].end, end)
      if (s > at) parts.push({ text: p.text.slice(at - base, s - base), match: -1 })
      parts.push({ text: p.text.slice(s - base, e - base), match: j })
      at = e
      if (matches[j].end > end) break
      j += 1
    }
    if (at < end || parts.length === 0) parts.push({ text: p.text.slice(at - base), match: -1 })
    out.push(parts)
    base = end
  }
  return out
}

/** The next match index after `current` in direction `dir`, wrapping around. */
export function stepMatch(count: number, current: number, dir: 1 | -1): number {
  if (count === 0) return -1
  if (current < 0) return dir === 1 ? 0 : count - 1
  return (current + dir + count) % count
}

/** `<process id>.<channel>.log`, with path separators made harmless. */
export function logFileName(id: string, channel: string): string {
  return `${id.replace(/[/\\]/g, '_')}.${channel}.log`
}
