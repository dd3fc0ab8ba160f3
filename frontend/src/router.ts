// Hash routes: the server serves one file whatever the sub-path, and a reload or a shared
// link (filters included: #/processes?q=state:fatal) lands on the same view.

import { createRouter, createWebHashHistory } from 'vue-router'

export const router = createRouter({
  history: createWebHashHistory(),
  routes: [
    { path: '/', name: 'overview', component: () => import('./views/OverviewView.vue') },
    { path: '/processes', name: 'processes', component: () => import('./views/ProcessesView.vue') },
    { path: '/cluster', name: 'cluster', component: () => import('./views/ClusterView.vue') },
    { path: '/farm', name: 'farm', component: () => import('./views/FarmView.vue') },
    { path: '/notifications', name: 'notifications', component: () => import('./views/NotificationsView.vue') },
    { path: '/audit', name: 'audit', component: () => import('./views/AuditView.vue') },
    { path: '/:rest(.*)*', redirect: '/' },
  ],
})
