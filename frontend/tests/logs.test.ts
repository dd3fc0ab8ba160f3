import { describe, expect, it } from 'vitest'
import {
  appendChunk,
  byteOffsetAt,
  compact,
  earlierWindow,
  emptyLog,
  findMatches,
  indexAfterBytes,
  logFileName,
  logText,
  pieceParts,
  prependChunk,
  stepMatch,
  trim,
  utf8Length,
  type LogBuffer,
} from '../src/lib/logs'
import type { LogChunk } from '../src/lib/types'

const enc = new TextEncoder()

/** A fake log file: chunks are cut from its bytes exactly as the hub would. */
function chunkOf(file: string, offset: number, end: number, reset = false): LogChunk {
  const bytes = enc.encode(file)
  return { text: new TextDecoder().decode(bytes.slice(offset, end)), offset, end, size: bytes.length, reset }
}

function feed(buf: LogBuffer, ...chunks: LogChunk[]): LogBuffer {
  for (const c of chunks) buf = appendChunk(buf, c).buf
  return buf
}

const UNI = 'häagen 日本語 🚀\n'

describe('utf-8 arithmetic', () => {
  it('counts bytes like TextEncoder', () => {
    for (const s of ['', 'abc', UNI, '🚀🚀', 'ä\u00e9\u4e2d']) expect(utf8Length(s)).toBe(enc.encode(s).length)
  })

  it('finds the index after n bytes without splitting a character', () => {
    // "h"=1, "ä"=2 -> after 3 bytes we are past "hä"
    expect(indexAfterBytes(UNI, 3)).toBe(2)
    // "häagen " is 8 bytes; "日" 3 more
    expect(indexAfterBytes(UNI, 11)).toBe(8)
    // the rocket starts at byte 18 and is 4 bytes / 2 code units
    expect(indexAfterBytes(UNI, 22)).toBe(13)
    // a count ending inside the rocket rounds up to its end
    expect(indexAfterBytes(UNI, 19)).toBe(13)
  })
})

describe('appendChunk', () => {
  const file = 'line one\nline two\n' + UNI + 'line four\n'
  const total = enc.encode(file).length

  it('appends windows in order and knows its offsets', () => {
    const a = appendChunk(emptyLog(), chunkOf(file, 0, 9))
    expect(a.outcome).toBe('init')
    const b = appendChunk(a.buf, chunkOf(file, 9, 18))
    expect(b.outcome).toBe('appended')
    const c = feed(b.buf, chunkOf(file, 18, total))
    expect(logText(c)).toBe(file)
    expect(c.start).toBe(0)
    expect(c.end).toBe(total)
    expect(c.chars).toBe(file.length)
    // the input is not modified
    expect(logText(a.buf)).toBe('line one\n')
  })

  it('skips overlap byte-exactly across multi-byte characters', () => {
    const start = 18 // "häagen ..." begins here
    const buf = feed(emptyLog(), chunkOf(file, 0, start + 11)) // up to and including "日"
    const r = appendChunk(buf, chunkOf(file, start, total)) // repeats "häagen 日"
    expect(r.outcome).toBe('overlap')
    expect(logText(r.buf)).toBe(file)
    expect(r.buf.end).toBe(total)
  })

  it('ignores stale windows but updates the size', () => {
    const buf = feed(emptyLog(), chunkOf(file, 0, total))
    const r = appendChunk(buf, { text: '', offset: total, end: total, size: total, reset: false })
    expect(r.outcome).toBe('stale')
    expect(logText(r.buf)).toBe(file)
  })

  it('marks a gap when the window starts past the end', () => {
    const buf = feed(emptyLog(), chunkOf(file, 0, 9))
    const r = appendChunk(buf, chunkOf(file, 18, total))
    expect(r.outcome).toBe('gap')
    expect(r.buf.pieces[1].gapBefore).toBe(9)
    expect(logText(r.buf)).toBe('line one\n' + UNI + 'line four\n')
  })

  it('starts over on reset', () => {
    const buf = feed(emptyLog(), chunkOf(file, 0, total))
    const r = appendChunk(buf, chunkOf('fresh\n', 0, 6, true))
    expect(r.outcome).toBe('reset')
    expect(logText(r.buf)).toBe('fresh\n')
    expect(r.buf.start).toBe(0)
    expect(r.buf.end).toBe(6)
    expect(r.buf.resets).toBe(1)
  })

  it('trims whole lines from the front and keeps byte offsets right', () => {
    const lines = Array.from({ length: 50 }, (_, i) => `${i} ${UNI}`).join('')
    let buf = emptyLog()
    const bytes = enc.encode(lines).length
    // feed in windows that end on character boundaries
    let off = 0
    while (off < bytes) {
      let end = Math.min(bytes, off + 97)
      while (end < bytes && (enc.encode(lines)[end] & 0xc0) === 0x80) end += 1
      buf = appendChunk(buf, chunkOf(lines, off, end), 300).buf
      off = end
    }
    expect(buf.chars).toBeLessThanOrEqual(300)
    const text = logText(buf)
    expect(text.length).toBe(buf.chars)
    // the first line is whole
    expect(text).toMatch(/^\d+ häagen/)
    expect(lines.endsWith(text)).toBe(true)
    // start is the byte offset of the remaining text
    expect(buf.start).toBe(bytes - enc.encode(text).length)
    expect(buf.end).toBe(bytes)
  })

  it('merges pieces when there are many', () => {
    let buf = emptyLog()
    for (let i = 0; i < 100; i++) buf = appendChunk(buf, { text: `${i}\n`, offset: buf.end, end: buf.end + `${i}\n`.length, size: 0, reset: false }).buf
    expect(buf.pieces.length).toBeLessThanOrEqual(48)
    expect(logText(buf)).toBe(Array.from({ length: 100 }, (_, i) => `${i}\n`).join(''))
    expect(new Set(buf.pieces.map((p) => p.key)).size).toBe(buf.pieces.length)
    expect(compact(buf, 1000)).toBe(buf)
  })
})

describe('trim', () => {
  it('leaves a small buffer alone', () => {
    const buf = feed(emptyLog(), chunkOf('abc\n', 0, 4))
    expect(trim(buf, 10)).toBe(buf)
  })

  it('never splits a surrogate pair on a line longer than the slack', () => {
    const line = '🚀'.repeat(10000) // one huge line
    const buf = trim(feed(emptyLog(), chunkOf(line, 0, 40000)), 4001)
    const text = logText(buf)
    expect(text.charCodeAt(0)).toBe(0xd83d) // starts with a high surrogate
    expect(buf.start).toBe(40000 - enc.encode(text).length)
  })
})

describe('prependChunk and earlierWindow', () => {
  const file = 'aaaa\nbbbb\n' + UNI
  const total = enc.encode(file).length

  it('loads the window before the start', () => {
    const buf = feed(emptyLog(), chunkOf(file, 10, total))
    expect(earlierWindow(buf, 4)).toEqual({ offset: 6, length: 4 })
    expect(earlierWindow(buf)).toEqual({ offset: 0, length: 10 })
    const more = prependChunk(buf, chunkOf(file, 0, 10))
    expect(logText(more)).toBe(file)
    expect(more.start).toBe(0)
    expect(earlierWindow(more)).toBeNull()
  })

  it('cuts overlap off the earlier window', () => {
    const buf = feed(emptyLog(), chunkOf(file, 10, total))
    const more = prependChunk(buf, chunkOf(file, 5, 10 + 8)) // overlaps "häagen "
    expect(logText(more)).toBe(file.slice(5))
  })
})

describe('search', () => {
  const text = 'Häagen 日本語 🚀 then häAGEN again; 日本 🚀\n'

  it('is case-insensitive on non-ASCII text and returns UTF-16 positions', () => {
    const m = findMatches(text, 'HÄAGEN')
    expect(m).toEqual([
      { start: 0, end: 6 },
      { start: 19, end: 25 },
    ])
    expect(text.slice(m[1].start, m[1].end)).toBe('häAGEN')
    const rockets = findMatches(text, '🚀')
    expect(rockets.map((r) => r.start)).toEqual([11, 36])
    expect(rockets[0].end - rockets[0].start).toBe(2)
    expect(findMatches(text, '日本').length).toBe(2)
    expect(findMatches(text, '')).toEqual([])
    expect(findMatches('a.b axb', '.')).toEqual([{ start: 1, end: 2 }])
  })

  it('maps a match to its byte offset in the log', () => {
    const buf = feed(emptyLog(), { text: 'xx' + UNI, offset: 100, end: 100 + 2 + utf8Length(UNI), size: 0, reset: false })
    const [rocket] = findMatches(logText(buf), '🚀')
    // "xx"=2, "häagen "=8, "日本語 "=10 bytes
    expect(byteOffsetAt(buf, rocket.start)).toBe(100 + 20)
  })

  it('cuts pieces into highlighted parts, also across piece boundaries', () => {
    let buf = feed(emptyLog(), { text: 'foo ba', offset: 0, end: 6, size: 0, reset: false })
    buf = appendChunk(buf, { text: 'r foo', offset: 6, end: 11, size: 0, reset: false }).buf
    const matches = findMatches(logText(buf), 'BAR')
    expect(matches).toEqual([{ start: 4, end: 7 }])
    const parts = pieceParts(buf.pieces, matches)
    expect(parts).toEqual([
      [
        { text: 'foo ', match: -1 },
        { text: 'ba', match: 0 },
      ],
      [
        { text: 'r', match: 0 },
        { text: ' foo', match: -1 },
      ],
    ])
    const fooParts = pieceParts(buf.pieces, findMatches(logText(buf), 'foo'))
    expect(fooParts.flat().filter((p) => p.match >= 0).map((p) => p.text)).toEqual(['foo', 'foo'])
    expect(fooParts.flat().map((p) => p.text).join('')).toBe('foo bar foo')
  })

  it('steps through matches with wrap-around', () => {
    expect(stepMatch(3, -1, 1)).toBe(0)
    expect(stepMatch(3, -1, -1)).toBe(2)
    expect(stepMatch(3, 2, 1)).toBe(0)
    expect(stepMatch(3, 0, -1)).toBe(2)
    expect(stepMatch(0, 0, 1)).toBe(-1)
  })
})

describe('logFileName', () => {
  it('is <id>.<channel>.log', () => {
    expect(logFileName('sv1:web:api', 'stderr')).toBe('sv1:web:api.stderr.log')
    expect(logFileName('a/b', 'stdout')).toBe('a_b.stdout.log')
  })
})
