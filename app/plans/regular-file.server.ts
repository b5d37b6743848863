/**
 * Reading the files of a plan folder: regular files only. A FIFO would block the reading thread
 * until something writes to it (with four such reads, every file access of the process waits), a
 * device may never end (/dev/zero) or act on being opened, and a symbolic link may lead anywhere,
 * so its target's contents would end up in a plan, or in an error shown to every viewer.
 *
 * The file is looked at with lstat before it is opened (nothing but a regular file is ever
 * opened), then opened with O_NOFOLLOW | O_NONBLOCK and checked again through its descriptor, so
 * a file swapped for a link or a FIFO between the two is refused too.
 */
import { constants as fsConstants, type Stats } from 'node:fs';
import fs from 'node:fs/promises';

export type RegularFileRead =
  | { ok: true; bytes: Buffer }
  | { ok: false; problem: 'missing' }
  | { ok: false; problem: 'link' }
  | { ok: false; problem: 'not-regular'; kind: string }
  | { ok: false; problem: 'unreadable'; reason: string };

/** What a non-regular file is, in words. */
function kindOf(stat: Stats): string {
  if (stat.isFIFO()) return 'a FIFO (named pipe)';
  if (stat.isSocket()) return 'a socket';
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'a device';
  if (stat.isDirectory()) return 'a folder';
  return 'not a regular file';
}

/** Never follows a link, never waits on a FIFO. */
export const REGULAR_FILE_OPEN_FLAGS = fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK;

export async function readRegularFile(fullPath: string): Promise<RegularFileRead> {
  let stat: Stats;
  try {
    stat = await fs.lstat(fullPath);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { ok: false, problem: 'missing' };
    return { ok: false, problem: 'unreadable', reason: code ?? 'unknown error' };
  }
  if (stat.isSymbolicLink()) return { ok: false, problem: 'link' };
  if (!stat.isFile()) return { ok: false, problem: 'not-regular', kind: kindOf(stat) };

  let handle: fs.FileHandle;
  try {
    handle = await fs.open(fullPath, REGULAR_FILE_OPEN_FLAGS);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // Swapped for a link (ELOOP; EMLINK on some BSDs) or removed since the lstat.
    if (code === 'ELOOP' || code === 'EMLINK') return { ok: false, problem: 'link' };
    if (code === 'ENOENT') return { ok: false, problem: 'missing' };
    return { ok: false, problem: 'unreadable', reason: code ?? 'unknown error' };
  }
  try {
    const opened = await handle.stat();
    if (!opened.isFile()) return { ok: false, problem: 'not-regular', kind: kindOf(opened) };
    return { ok: true, bytes: await handle.readFile() };
  } catch (error) {
    return { ok: false, problem: 'unreadable', reason: (error as NodeJS.ErrnoException).code ?? 'unknown error' };
  } finally {
    await handle.close();
  }
}

/**
 * Why a file of a plan folder was not read, and what to do, for a plan error. `what` names the file
 * as the error shows it. Never the file's contents: only its kind.
 */
export function regularFileProblem(what: string, read: Exclude<RegularFileRead, { ok: true }>): string {
  switch (read.problem) {
    case 'missing':
      return `${what} does not exist.`;
    case 'link':
      return `${what} is a symbolic link: Runsheet reads only regular files in a plan folder, never what a link leads to. Put the file itself in its place.`;
    case 'not-regular':
      return `${what} is ${read.kind}, not a regular file: Runsheet reads only regular files in a plan folder. Put the file itself in its place.`;
    case 'unreadable':
      return `${what} cannot be read (${read.reason}): make it readable by the Runsheet process.`;
  }
}
