#!/usr/bin/env node
// The built CLI (dist/ is made by the package build, so installs never see a missing bin target).
await import('../dist/bin.js');
