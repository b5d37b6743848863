/**
 * The layer rules in .dependency-cruiser.cjs hold for the code, and they bite: the app, the command
 * line, the server and the store are cruised with the repository's own configuration and must show
 * no violation; a scratch tree with deliberate back-imports, a framework import in the domain and a
 * cycle is cruised with the same rules and must be refused. Without the second test a typo in a
 * layer regex would make the first pass for the wrong reason.
 * No database and no build: dependency-cruiser's programmatic API reads the source only.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cruise, type ICruiseOptions, type ICruiseResult, type IViolation } from 'dependency-cruiser';
import extractDepcruiseOptions from 'dependency-cruiser/config-utl/extract-depcruise-options';
import extractTSConfig from 'dependency-cruiser/config-utl/extract-ts-config';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CONFIG = path.join(ROOT, '.dependency-cruiser.cjs');

/** What `npm run lint:layers` cruises. */
const CRUISED = ['app', 'cli', 'server', 'db', 'runsheet.config.ts'];

/**
 * Cruises `paths` under `baseDir` with the repository's rules, the way the depcruise CLI does: the
 * config file becomes cruise options, and the tsconfig under `baseDir` is parsed and handed over
 * both for resolution and for transpiling.
 */
async function cruiseWithRepoRules(baseDir: string, paths: string[]): Promise<ICruiseResult> {
  const repoOptions = await extractDepcruiseOptions(CONFIG);
  const tsConfigFile = path.join(baseDir, 'tsconfig.json');
  const options: ICruiseOptions = {
    ...repoOptions,
    baseDir,
    tsConfig: { fileName: tsConfigFile },
    outputType: 'json',
  };
  const { output } = await cruise(paths, options, {}, { tsConfig: extractTSConfig(tsConfigFile) });
  return (typeof output === 'string' ? JSON.parse(output) : output) as ICruiseResult;
}

function describeViolation(violation: IViolation): string {
  const cycle = violation.cycle?.length ? ` (cycle: ${[violation.from, ...violation.cycle.map((step) => step.name)].join(' → ')})` : '';
  return `${violation.rule.name}: ${violation.from} → ${violation.to}${cycle}`;
}

describe('layer rules', () => {
  it('the app, the command line, the server and the store keep their layers', async () => {
    const result = await cruiseWithRepoRules(ROOT, CRUISED);

    // A wrong path or exclude would cruise nothing and pass vacuously.
    const sources = result.modules.map((module) => module.source);
    for (const root of ['app/', 'cli/', 'server/', 'db/']) {
      expect(sources.some((source) => source.startsWith(root)), `nothing under ${root} was cruised`).toBe(true);
    }

    const violations = result.summary.violations.map(describeViolation);
    expect(violations, `layer rule violations (${violations.length}):\n${violations.join('\n')}\n`).toEqual([]);
  });

  describe('a deliberately added back-import fails the rules', () => {
    let scratch: string;
    let violations: IViolation[];

    /** Writes `files` (path → contents) under the scratch folder. */
    function write(files: Record<string, string>): void {
      for (const [file, contents] of Object.entries(files)) {
        const full = path.join(scratch, file);
        fs.mkdirSync(path.dirname(full), { recursive: true });
        fs.writeFileSync(full, contents);
      }
    }

    function flagged(rule: string, from: string, to: string | RegExp): boolean {
      return violations.some(
        (violation) =>
          violation.rule.name === rule &&
          violation.from === from &&
          (typeof to === 'string' ? violation.to === to : to.test(violation.to)),
      );
    }

    beforeAll(async () => {
      // realpath: on some systems the temporary folder is reached through a symlink.
      scratch = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-layer-rules-')));
      write({
        'tsconfig.json': JSON.stringify({
          include: ['**/*.ts', '**/*.tsx'],
          compilerOptions: { module: 'ESNext', moduleResolution: 'Bundler', jsx: 'react-jsx', strict: true, noEmit: true },
        }),
        // A stub of react, so that the import resolves into node_modules as it does in the repository.
        'node_modules/react/package.json': JSON.stringify({ name: 'react', version: '18.3.1', main: 'index.js' }),
        'node_modules/react/index.js': 'exports.useState = function useState() {};\n',
        // Domain → web.
        'app/plans/plan.server.ts': "import { page } from '../web/page.server';\nexport const plan = page;\n",
        'app/web/page.server.ts': 'export const page = 1;\n',
        // Store → engine.
        'app/runtime/store.server.ts': "import { engine } from '../engine/x.server';\nexport const store = engine;\n",
        'app/engine/x.server.ts': 'export const engine = 1;\n',
        // A cycle closed by a type-only import.
        'app/sql/a.server.ts': "import { b } from './b.server';\nexport type A = { b: typeof b };\n",
        'app/sql/b.server.ts': "import type { A } from './a.server';\nexport const b: A | null = null;\n",
        // Domain → react (resolved through the stub) and → @remix-run/node (not installed here: a bare name).
        'app/runs/use-thing.ts': "import { useState } from 'react';\nexport const useThing = useState;\n",
        'app/runs/respond.server.ts': "import { json } from '@remix-run/node';\nexport const respond = json;\n",
      });
      violations = (await cruiseWithRepoRules(scratch, ['app'])).summary.violations;
    });

    afterAll(() => {
      if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
    });

    it('refuses a domain module importing the web layer', () => {
      expect(flagged('domain-imports-no-framework-or-upper-layer', 'app/plans/plan.server.ts', 'app/web/page.server.ts'), violations.map(describeViolation).join('\n')).toBe(true);
    });

    it('refuses the store importing the engine', () => {
      expect(flagged('store-is-the-bottom', 'app/runtime/store.server.ts', 'app/engine/x.server.ts'), violations.map(describeViolation).join('\n')).toBe(true);
    });

    it('refuses an import cycle even when a type-only import closes it', () => {
      // dependency-cruiser reports a cycle once, from one of its modules, with the path round it.
      const cycles = violations.filter((violation) => violation.rule.name === 'no-circular');
      expect(cycles.map(describeViolation)).toHaveLength(1);
      const cycle = cycles[0]!.cycle ?? [];
      expect(new Set([cycles[0]!.from, ...cycle.map((step) => step.name)])).toEqual(new Set(['app/sql/a.server.ts', 'app/sql/b.server.ts']));
      expect(cycle.some((step) => step.dependencyTypes.includes('type-only'))).toBe(true);
    });

    it('refuses a domain module importing react or @remix-run, installed or not', () => {
      expect(flagged('domain-imports-no-framework-or-upper-layer', 'app/runs/use-thing.ts', /^node_modules\/react\//), violations.map(describeViolation).join('\n')).toBe(true);
      expect(flagged('domain-imports-no-framework-or-upper-layer', 'app/runs/respond.server.ts', '@remix-run/node'), violations.map(describeViolation).join('\n')).toBe(true);
    });

    it('refuses nothing else', () => {
      expect(new Set(violations.map((violation) => violation.rule.name))).toEqual(
        new Set(['domain-imports-no-framework-or-upper-layer', 'store-is-the-bottom', 'no-circular']),
      );
      expect(violations.map(describeViolation)).toHaveLength(5);
    });
  });
});
