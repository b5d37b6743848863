/**
 * A new plan folder from files made elsewhere (an import, a scaffold): validated in a temporary
 * folder before anyone saves it, written into the plans folder only where no plan of that id
 * exists, or packed as a zip where the plans folder cannot be written.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { strToU8, zipSync } from 'fflate';
import { RunsheetError } from '../runtime/errors';
import { loadPlanUncached, type LoadedPlan } from './load-plans.server';
import { PlanSchema } from './plan-schema';

export interface NewPlanFile {
  /** Relative to the plan folder, "/"-separated, no "..". */
  path: string;
  content: string;
}

function assertPlanId(id: string): void {
  if (!PlanSchema.shape.id.safeParse(id).success) {
    throw new RunsheetError('invalid_input', `"${id}" cannot be a plan id: use lower-case letters, digits, "-" and "_", starting with a letter or digit.`);
  }
}

function assertInside(file: NewPlanFile): void {
  if (path.posix.isAbsolute(file.path) || file.path.split('/').includes('..') || file.path.includes('\\') || file.path === '') {
    throw new RunsheetError('invalid_input', `"${file.path}" is not a file name inside a plan folder.`);
  }
}

/** Whether this process may create folders in the plans folder. */
export async function plansDirWritable(plansDir: string): Promise<boolean> {
  try {
    await fs.access(plansDir, fs.constants.W_OK | fs.constants.X_OK);
    return (await fs.stat(plansDir)).isDirectory();
  } catch {
    return false;
  }
}

export async function planFolderExists(plansDir: string, id: string): Promise<boolean> {
  return (await fs.stat(path.join(plansDir, id)).catch(() => undefined)) !== undefined;
}

/** The files as the loader sees them, from a temporary folder (removed afterwards): the plan's validity before it is saved. */
export async function validatePlanFiles(id: string, files: readonly NewPlanFile[]): Promise<LoadedPlan> {
  assertPlanId(id);
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'runsheet-plan-'));
  try {
    const plansDir = path.join(scratch, 'plans');
    await writeFiles(path.join(plansDir, id), files);
    return await loadPlanUncached(plansDir, id, { lint: false });
  } finally {
    await fs.rm(scratch, { recursive: true, force: true });
  }
}

/**
 * Writes plans/<id>/ with the files, refusing an id that exists (a plan folder is never
 * overwritten: its checksum is what runs were approved against). The folder appears whole or not
 * at all: the files are written beside it first, then renamed into place.
 */
export async function writeNewPlanFolder(plansDir: string, id: string, files: readonly NewPlanFile[]): Promise<string> {
  assertPlanId(id);
  const target = path.join(plansDir, id);
  if (await planFolderExists(plansDir, id)) {
    throw new RunsheetError('conflict', `A plan "${id}" exists already (${target}): choose another id, or remove that folder first.`);
  }
  if (!(await plansDirWritable(plansDir))) {
    throw new RunsheetError('configuration', `The plans folder ${plansDir} cannot be written by this process: download the plan as a zip instead, or make the folder writable.`);
  }
  const staging = await fs.mkdtemp(path.join(plansDir, `.${id}-`));
  try {
    await writeFiles(staging, files);
    await fs.rename(staging, target);
  } catch (error) {
    await fs.rm(staging, { recursive: true, force: true });
    if ((error as NodeJS.ErrnoException).code === 'ENOTEMPTY' || (error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new RunsheetError('conflict', `A plan "${id}" was created at the same moment (${target}): choose another id.`);
    }
    throw error;
  }
  return target;
}

/** The folder as a zip (<id>/plan.yaml, …), for a plans folder that cannot be written. */
export function zipPlanFolder(id: string, files: readonly NewPlanFile[]): Uint8Array {
  assertPlanId(id);
  const entries: Record<string, Uint8Array> = {};
  for (const file of files) {
    assertInside(file);
    entries[`${id}/${file.path}`] = strToU8(file.content);
  }
  // A fixed time keeps the archive the same bytes for the same files.
  return zipSync(entries, { mtime: new Date('2000-01-01T00:00:00Z') });
}

async function writeFiles(dir: string, files: readonly NewPlanFile[]): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  for (const file of files) {
    assertInside(file);
    const full = path.join(dir, file.path);
    await fs.mkdir(path.dirname(full), { recursive: true });
    await fs.writeFile(full, file.content, { flag: 'wx' });
  }
}
