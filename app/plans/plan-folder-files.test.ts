/**
 * Issue 11, reproduction 9: a plan folder is read as regular files only. A FIFO froze the loader
 * (and with it the server and `runsheet plans`); a symlinked plan.yaml was followed and its
 * target's contents echoed in the error.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromRoot } from '../runtime/paths.server';
import { loadPlan, loadPlans, type InvalidPlan, type LoadedPlan } from './load-plans.server';

const FIXTURE_OK = fromRoot('tests', 'fixtures', 'plans', 'fixture-ok');
const CANARY = 'secret-canary-7f3a9c';
// A test that would hang on a FIFO fails here instead of holding the run.
const HANG = { timeout: 20_000 };

let root: string;
let plansDir: string;

/** A copy of fixture-ok under `id`, its id rewritten. */
function planFolder(id: string): string {
  const dir = path.join(plansDir, id);
  fs.cpSync(FIXTURE_OK, dir, { recursive: true });
  const yaml = path.join(dir, 'plan.yaml');
  fs.writeFileSync(yaml, fs.readFileSync(yaml, 'utf8').replace('id: fixture-ok', `id: ${id}`));
  return dir;
}

function fifoAt(file: string): void {
  fs.rmSync(file, { force: true });
  execFileSync('mkfifo', [file]);
}

function invalid(loaded: LoadedPlan | undefined): InvalidPlan {
  if (!loaded || loaded.ok) throw new Error(`expected an invalid plan, got: ${JSON.stringify(loaded?.id)}`);
  return loaded;
}

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-plan-files-'));
  plansDir = path.join(root, 'plans');
  fs.mkdirSync(plansDir);
  fs.writeFileSync(path.join(root, 'secret.txt'), `${CANARY}\n`);

  fifoAt(path.join(planFolder('fifo-plan-yaml'), 'plan.yaml'));
  fifoAt(path.join(planFolder('fifo-step-file'), 'apply.sql'));
  execFileSync('mkfifo', [path.join(planFolder('fifo-unnamed'), 'scratch.fifo')]);

  const linkedYaml = path.join(planFolder('linked-plan-yaml'), 'plan.yaml');
  fs.rmSync(linkedYaml);
  fs.symlinkSync(path.join(root, 'secret.txt'), linkedYaml);

  // A link to a perfectly good plan.yaml is refused just the same: what is read is what is there.
  const goodElsewhere = path.join(root, 'good-plan.yaml');
  fs.writeFileSync(goodElsewhere, fs.readFileSync(path.join(FIXTURE_OK, 'plan.yaml'), 'utf8').replace('id: fixture-ok', 'id: linked-good-plan-yaml'));
  const linkedGood = path.join(planFolder('linked-good-plan-yaml'), 'plan.yaml');
  fs.rmSync(linkedGood);
  fs.symlinkSync(goodElsewhere, linkedGood);

  const insideLink = planFolder('linked-step-inside');
  fs.copyFileSync(path.join(insideLink, 'apply.sql'), path.join(insideLink, 'real-apply.sql'));
  fs.rmSync(path.join(insideLink, 'apply.sql'));
  fs.symlinkSync('real-apply.sql', path.join(insideLink, 'apply.sql'));

  fs.mkdirSync(path.join(plansDir, 'not-a-mapping'));
  fs.writeFileSync(path.join(plansDir, 'not-a-mapping', 'plan.yaml'), `${CANARY} a key file copied here by mistake\n`);
});

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

describe('plan folders hold regular files only (issue 11, reproduction 9)', () => {
  it('reports a FIFO plan.yaml as invalid, without waiting on it', HANG, async () => {
    const { errors } = invalid(await loadPlan(plansDir, 'fifo-plan-yaml', { lint: false }));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ file: 'plans/fifo-plan-yaml/plan.yaml', path: '' });
    expect(errors[0]!.message).toMatch(/FIFO/);
    expect(errors[0]!.message).toMatch(/regular file/);
  });

  it('reports a FIFO named as a step file as invalid, at the step that names it', HANG, async () => {
    const { errors } = invalid(await loadPlan(plansDir, 'fifo-step-file', { lint: false }));
    expect(errors).toEqual([expect.objectContaining({ file: 'plans/fifo-step-file/plan.yaml', path: 'apply[0].file', message: expect.stringMatching(/"apply\.sql" .*FIFO/) })]);
  });

  it('leaves a FIFO the plan does not name alone: the plan loads, twice (the second time from the cache)', HANG, async () => {
    for (let time = 0; time < 2; time++) expect((await loadPlan(plansDir, 'fifo-unnamed', { lint: false }))?.ok).toBe(true);
  });

  it('refuses a symlinked plan.yaml without reading it: the error says so and echoes nothing of its target', HANG, async () => {
    const loaded = invalid(await loadPlan(plansDir, 'linked-plan-yaml', { lint: false }));
    expect(loaded.errors).toEqual([{ file: 'plans/linked-plan-yaml/plan.yaml', path: '', message: expect.stringMatching(/symbolic link/) }]);
    expect(JSON.stringify(loaded)).not.toContain(CANARY);
    const good = invalid(await loadPlan(plansDir, 'linked-good-plan-yaml', { lint: false }));
    expect(good.errors[0]!.message).toMatch(/symbolic link/);
  });

  it('refuses a step file that is a link, even to a file inside the plan folder', HANG, async () => {
    const { errors } = invalid(await loadPlan(plansDir, 'linked-step-inside', { lint: false }));
    expect(errors).toEqual([expect.objectContaining({ path: 'apply[0].file', message: expect.stringMatching(/"apply\.sql" .*symbolic link/) })]);
  });

  it('says a plan.yaml that is not a mapping is not one, without echoing what it holds', HANG, async () => {
    const loaded = invalid(await loadPlan(plansDir, 'not-a-mapping', { lint: false }));
    expect(loaded.errors[0]!.message).toMatch(/must be a mapping/);
    expect(JSON.stringify(loaded)).not.toContain(CANARY);
  });

  it('lists every plan of the folder, each judged on its own', HANG, async () => {
    const all = await loadPlans(plansDir, { lint: false });
    expect(all.map((plan) => [plan.id, plan.ok])).toEqual([
      ['fifo-plan-yaml', false],
      ['fifo-step-file', false],
      ['fifo-unnamed', true],
      ['linked-good-plan-yaml', false],
      ['linked-plan-yaml', false],
      ['linked-step-inside', false],
      ['not-a-mapping', false],
    ]);
  });
});
