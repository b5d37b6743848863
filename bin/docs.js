#!/usr/bin/env node
// `npm run docs`: writes the documentation generated from code (the run-log event format).
import fs from 'node:fs';
import path from 'node:path';
import { register } from 'tsx/esm/api';

register();
const root = path.resolve(import.meta.dirname, '..');
const { generatedDocs } = await import('../docs/generated-docs.ts');
for (const [file, content] of Object.entries(generatedDocs())) {
  fs.writeFileSync(path.join(root, file), content);
  console.log(`wrote ${file}`);
}
