export * from './dtype.js';
export * from './backend.js';
export * from './random/philox.js';
