// Dark and light themes: the user's choice is kept; without one the system's is followed.

import { ref } from 'vue'

export type Theme = 'light' | 'dark'
const KEY = 'fleetwatch.theme'

function initial(): Theme {
  const saved = localStorage.getItem(KEY)
  if (saved === 'light' || saved === 'dark') return saved
  return window.matchMedia?.('(prefers-color-scheme: dark)').matches ? 'dark' : 'light'
}

export const theme = ref<Theme>(initial())
document.documentElement.dataset.theme = theme.value

export function setTheme(value: Theme): void {
  theme.value = value
  document.documentElement.dataset.theme = value
  localStorage.setItem(KEY, value)
}

export function toggleTheme(): void {
  setTheme(theme.value === 'dark' ? 'light' : 'dark')
}
