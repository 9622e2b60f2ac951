export { readBio, readBioC, readBioSentences, readPubTator } from './bc5cdr.js';
export { readLivedoor } from './livedoor.js';
