// What tests/e2e/test_overflow.py asks the page (issue 12): every element whose own text
// shows and is cut, every box that scrolls sideways but should not, placeholders and
// options that do not fit, and a page that scrolls sideways. Called by page.evaluate with
// [selectors that may scroll sideways, selectors allowed an ellipsis, selectors skipped];
// returns [{el, text, why}].
([scrollOk, ellipsisOk, notYet]) => {
  const out = []
  const style = (el) => getComputedStyle(el)
  const scrolls = (v) => v === 'auto' || v === 'scroll'
  const clips = (v) => v === 'hidden' || v === 'clip'
  const name = (el) => {
    if (!el || el.nodeType !== 1) return String(el)
    let s = el.tagName.toLowerCase()
    const t = el.getAttribute('data-testid')
    if (t) s += `[data-testid="${t}"]`
    const cls = typeof el.className === 'string' ? el.className : (el.getAttribute('class') || '')
    for (const c of cls.split(/\s+/).filter(Boolean).slice(0, 3)) s += '.' + c
    return s
  }
  const path = (el) => {
    const parts = []
    for (let e = el; e && e !== document.body && parts.length < 4; e = e.parentElement) parts.unshift(name(e))
    return parts.join(' > ')
  }
  const shown = (el) => {
    const cs = style(el)
    if (cs.visibility !== 'visible') return false
    for (let e = el; e; e = e.parentElement) if (style(e).opacity === '0') return false
    const b = el.getBoundingClientRect()
    // Text for screen readers only (1 px boxes that clip) is not a label on the screen.
    if (b.width <= 1 || b.height <= 1) return el.getClientRects().length > 1
    return el.getClientRects().length > 0
  }
  const ownText = (el) => Array.from(el.childNodes).filter((n) => n.nodeType === 3)
  const textOf = (el) => ownText(el).map((n) => n.textContent).join(' ').replace(/\s+/g, ' ').trim()
  const textRect = (el) => {
    let r = null
    for (const n of ownText(el)) {
      if (!n.textContent.trim()) continue
      const range = document.createRange()
      range.selectNodeContents(n)
      for (const b of range.getClientRects()) {
        if (b.width === 0 && b.height === 0) continue
        r = r ? { left: Math.min(r.left, b.left), right: Math.max(r.right, b.right),
                  top: Math.min(r.top, b.top), bottom: Math.max(r.bottom, b.bottom) }
              : { left: b.left, right: b.right, top: b.top, bottom: b.bottom }
      }
    }
    return r
  }
  const inner = (el) => {
    const b = el.getBoundingClientRect()
    const left = b.left + el.clientLeft, top = b.top + el.clientTop
    return { left, top, right: left + el.clientWidth, bottom: top + el.clientHeight }
  }
  const matchesAny = (el, sels) => sels.some((s) => el.closest(s))
  // The element whose box clips `el`'s content next: its containing block (an absolutely
  // or fixed positioned box escapes the boxes between it and its containing block).
  const containingBlock = (el) => {
    const pos = style(el).position
    let a = el.parentElement
    if (pos !== 'absolute' && pos !== 'fixed') return a
    for (; a; a = a.parentElement) {
      const cs = style(a)
      if (cs.transform !== 'none' || cs.filter !== 'none' || cs.contain.includes('paint')) return a
      if (pos === 'absolute' && cs.position !== 'static') return a
    }
    return null
  }
  const report = (el, why) => out.push({ el: path(el), text: (textOf(el) || el.getAttribute('placeholder') || '').slice(0, 60), why })

  for (const el of document.body.querySelectorAll('*')) {
    if (!shown(el)) continue
    const cs = style(el)
    // Boxes that scroll sideways.
    if (scrolls(cs.overflowX) && el.scrollWidth > el.clientWidth + 1 && !matchesAny(el, scrollOk))
      report(el, `scrolls sideways (${el.scrollWidth} > ${el.clientWidth})`)
    const text = textOf(el)
    if (!text || el.closest('svg title, script, style')) continue
    if (matchesAny(el, scrollOk) || matchesAny(el, notYet)) continue
    const ellipsis = cs.textOverflow === 'ellipsis'
    const allowed = ellipsisOk.some((s) => el.matches(s)) && (ellipsis || el.scrollWidth > el.clientWidth + 1)
    if (allowed) {
      const title = el.getAttribute('title') || el.closest('[title]')?.getAttribute('title') || ''
      if (!title.includes(text.replace(/…$/, ''))) report(el, `is allowed an ellipsis but its title ${JSON.stringify(title)} lacks its text`)
      continue
    }
    const block = cs.display !== 'inline' && !(el instanceof SVGElement)
    // Its own box.
    if (block && !scrolls(cs.overflowX) && (clips(cs.overflowX) || ellipsis) && el.scrollWidth > el.clientWidth + 1)
      report(el, `overflows its box sideways (${el.scrollWidth} > ${el.clientWidth})`)
    if (block && clips(cs.overflowY) && el.scrollHeight > el.clientHeight + 1)
      report(el, `overflows its box vertically (${el.scrollHeight} > ${el.clientHeight})`)
    let r = textRect(el)
    if (!r) continue
    if (block && !clips(cs.overflowX) && !scrolls(cs.overflowX) && cs.transform === 'none') {
      const box = inner(el)
      if (r.right > box.right + 1 || r.left < box.left - 1)
        report(el, `spills out of its box sideways (text ${Math.round(r.left)}..${Math.round(r.right)}, box ${Math.round(box.left)}..${Math.round(box.right)})`)
    }
    // The boxes around it that clip it.
    for (let a = clips(cs.overflowX) || clips(cs.overflowY) ? el : containingBlock(el); a && a !== document.documentElement; a = containingBlock(a)) {
      const as = style(a)
      if (a instanceof SVGElement && a.tagName.toLowerCase() !== 'svg') continue
      const box = inner(a)
      if (a.tagName.toLowerCase() === 'svg') {
        const b = a.getBoundingClientRect()
        Object.assign(box, { left: b.left, top: b.top, right: b.right, bottom: b.bottom })
      }
      const x = as.overflowX, y = as.overflowY
      if (scrolls(x)) {
        r = { ...r, left: Math.max(r.left, box.left), right: Math.min(r.right, box.right) }
      } else if (clips(x) && (r.right > box.right + 1 || r.left < box.left - 1)) {
        report(el, `is cut sideways by ${a === el ? 'its own box' : name(a)} (text ${Math.round(r.left)}..${Math.round(r.right)}, box ${Math.round(box.left)}..${Math.round(box.right)})`)
        break
      }
      if (scrolls(y)) {
        r = { ...r, top: Math.max(r.top, box.top), bottom: Math.min(r.bottom, box.bottom) }
      } else if (clips(y) && (r.bottom > box.bottom + 1 || r.top < box.top - 1)) {
        report(el, `is cut vertically by ${a === el ? 'its own box' : name(a)} (text ${r.top.toFixed(1)}..${r.bottom.toFixed(1)}, box ${box.top.toFixed(1)}..${box.bottom.toFixed(1)})`)
        break
      }
      if (r.right <= r.left || r.bottom <= r.top) break  // scrolled out of sight: one scroll away
    }
    if (r.right > r.left && (r.right > innerWidth + 1 || r.left < -1))
      report(el, `leaves the screen sideways (text ${Math.round(r.left)}..${Math.round(r.right)} of ${innerWidth})`)
  }
  // Placeholders and the chosen option of a select are labels too.
  const ctx = document.createElement('canvas').getContext('2d')
  for (const el of document.body.querySelectorAll('input[placeholder], select')) {
    if (!shown(el)) continue
    const cs = style(el)
    const label = el.tagName === 'SELECT' ? (el.selectedOptions[0]?.textContent || '') : (el.value ? '' : el.placeholder)
    if (!label.trim()) continue
    ctx.font = `${cs.fontStyle} ${cs.fontWeight} ${cs.fontSize} ${cs.fontFamily}`
    const room = el.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight) - (el.tagName === 'SELECT' ? 18 : 0)
    const need = ctx.measureText(label.trim()).width
    if (need > room + 1) out.push({ el: path(el), text: label.trim().slice(0, 60), why: `its ${el.tagName === 'SELECT' ? 'option' : 'placeholder'} is cut (${Math.round(need)} > ${Math.round(room)})` })
  }
  const doc = document.scrollingElement
  if (doc.scrollWidth > innerWidth) out.push({ el: 'the page', text: '', why: `scrolls sideways (${doc.scrollWidth} > ${innerWidth})` })
  return out
}
