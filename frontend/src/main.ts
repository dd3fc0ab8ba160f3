import { createApp } from 'vue'
import App from './App.vue'
import { connectFleet, fleet } from './lib/fleet'
import { router } from './router'
import './style.css'

connectFleet()
createApp(App).use(router).mount('#app')

// For bench/ui.py and the end-to-end tests: the store's seq and last repaint.
;(window as unknown as { __fleetwatch: unknown }).__fleetwatch = { fleet }
