/**
 * The documentation generated from code is current: docs/run-log-events.md and its JSON Schema
 * are what the run-event union renders now. When this fails, run `npm run docs` and commit.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { generatedDocs } from '../../docs/generated-docs';

const ROOT = path.resolve(import.meta.dirname, '../..');

describe('generated documentation', () => {
  for (const [file, content] of Object.entries(generatedDocs())) {
    it(`${file} is current (npm run docs writes it)`, () => {
      const committed = fs.existsSync(path.join(ROOT, file)) ? fs.readFileSync(path.join(ROOT, file), 'utf8') : '(missing)';
      expect(committed, `${file} is stale: run npm run docs and commit it`).toBe(content);
    });
  }
});
