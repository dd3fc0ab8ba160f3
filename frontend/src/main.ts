import { createApp } from 'vue'
import App from './App.vue'
import { connectFleet, disconnectFleet, fleet } from './lib/fleet'
import { session } from './lib/session'
import { router } from './router'
import './style.css'

// Who is it first (GET /api/me): logged in (or a hub without login) streams at once; a 401
// shows the login page; no answer at all streams anyway (the banner says the hub is away,
// and the first live frame asks /api/me again).
session.onChange((state) => {
  if (state === 'in') connectFleet()
  else if (state === 'login') disconnectFleet()
})
void session.check().then((state) => {
  if (state === 'unknown') connectFleet()
})
createApp(App).use(router).mount('#app')

// For bench/ui.py and the end-to-end tests: the store's seq and last repaint.
;(window as unknown as { __fleetwatch: unknown }).__fleetwatch = { fleet, session }
