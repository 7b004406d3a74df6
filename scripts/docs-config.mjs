// Writes the key reference of docs/configuration.md from src/config/fields.ts (via dist/).
// Run with `npm run docs:config`; test/config-reference.test.ts fails while the two disagree.
import { readFileSync, writeFileSync } from 'node:fs';
import { withReference } from '../dist/config/reference.js';

const file = new URL('../docs/configuration.md', import.meta.url);
const before = readFileSync(file, 'utf8');
const after = withReference(before);
if (after === before) console.log('docs/configuration.md: up to date');
else {
  writeFileSync(file, after);
  console.log('docs/configuration.md: key reference rewritten');
}
