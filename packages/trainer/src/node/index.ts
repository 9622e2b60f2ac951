export { nodeRunStore } from './store.js';
