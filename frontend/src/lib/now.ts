// Page-wide helpers for components: one ticking clock, and "is the user typing?".

import { onBeforeUnmount, onMounted, ref, type Ref } from 'vue'

const clock = ref(Date.now())
let users = 0
let timer: ReturnType<typeof setInterval> | undefined

/** The time in ms, updated every second while any mounted component uses it (one timer). */
export function useNow(): Ref<number> {
  onMounted(() => {
    users += 1
    if (timer === undefined) {
      clock.value = Date.now()
      timer = setInterval(() => (clock.value = Date.now()), 1000)
    }
  })
  onBeforeUnmount(() => {
    users -= 1
    if (users === 0 && timer !== undefined) {
      clearInterval(timer)
      timer = undefined
    }
  })
  return clock
}

/** True when a key event goes to a text field (shortcuts must leave it alone). */
export function isTyping(ev: KeyboardEvent): boolean {
  const el = ev.target as HTMLElement | null
  return !!el && (el.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName))
}
