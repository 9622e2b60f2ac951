export { type NodeRunStoreOptions, nodeRunStore, removeStaleTempFiles } from './store.js';
