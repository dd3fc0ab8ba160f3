import { createApp } from 'vue'
import App from './App.vue'
import { connectFleet } from './lib/fleet'
import { router } from './router'
import './style.css'

connectFleet()
createApp(App).use(router).mount('#app')
