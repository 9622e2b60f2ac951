export { readBio, readBioC, readPubTator } from './bc5cdr.js';
export { readLivedoor } from './livedoor.js';
