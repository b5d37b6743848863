/**
 * A plan's checksum (docs/decisions/001-plan-checksum-manifest.md): sha256 over a manifest that
 * lists plan.yaml and every SQL file it names, each with its own sha256. The manifest is plain
 * `sha256sum` output, so the checksum can be recomputed with coreutils and no Runsheet code.
 */
import { createHash } from 'node:crypto';

export interface ManifestEntry {
  /** Relative to the plan folder, "/"-separated, e.g. "plan.yaml" or "sql/apply.sql". */
  path: string;
  /** sha256 of the file's bytes, lower-case hex. */
  sha256: string;
}

export function sha256Hex(content: string | Uint8Array): string {
  return createHash('sha256').update(content).digest('hex');
}

/**
 * One line per file, `<sha256-hex><two spaces><path>\n`, sorted by the path's UTF-8 bytes
 * (`LC_ALL=C sort`), each path once.
 */
export function planManifest(files: readonly ManifestEntry[]): string {
  const byPath = new Map<string, string>();
  for (const file of files) {
    if (/[\u0000-\u001f\u007f\\]/.test(file.path)) {
      // sha256sum escapes such names; refusing them keeps one line per file and one spelling.
      throw new Error(`"${file.path}" cannot be listed in a plan manifest: file names may not contain control characters or "\\"`);
    }
    if (!/^[0-9a-f]{64}$/.test(file.sha256)) throw new Error(`"${file.sha256}" is not a lower-case hex sha256 (file ${file.path})`);
    const previous = byPath.get(file.path);
    if (previous !== undefined && previous !== file.sha256) throw new Error(`"${file.path}" is listed twice with different contents`);
    byPath.set(file.path, file.sha256);
  }
  return [...byPath.entries()]
    .sort(([a], [b]) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')))
    .map(([path, sha256]) => `${sha256}  ${path}\n`)
    .join('');
}

/** sha256 of the manifest's UTF-8 bytes, lower-case hex. */
export function planChecksum(manifest: string): string {
  return sha256Hex(Buffer.from(manifest, 'utf8'));
}
