// Whether the window is phone-narrow (the CSS breakpoint of the views, 640 px): for the
// few labels that need a shorter text there rather than a smaller box (placeholders).

import { readonly, ref } from 'vue'

export const NARROW = '(max-width: 640px)'

const query = typeof window !== 'undefined' && window.matchMedia ? window.matchMedia(NARROW) : null
const state = ref(query?.matches ?? false)
query?.addEventListener('change', (ev) => (state.value = ev.matches))

/** True while the window is at most 640 px wide. */
export const narrow = readonly(state)
