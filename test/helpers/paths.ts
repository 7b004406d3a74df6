// Test files run compiled from `.build-*/test/...`; the repository root is three levels up
// from this file (`.build-*/test/helpers/paths.js`).
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const FIXTURES = path.join(ROOT, 'test', 'fixtures');
export const CLI = path.join(ROOT, 'dist', 'cli.js');
