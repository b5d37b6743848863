import { describe, expect, it } from 'vitest';
import { terminalSafeIo, type CliIo } from './command';
import { oneLine, terminalText } from './terminal-text';

describe('terminal text (issue 11, reproduction 10)', () => {
  it('shows ESC, CR, BEL, DEL, C1 and bidirectional controls escaped, keeping line ends and tabs', () => {
    expect(terminalText('a\u001b[31mb\rc\u0007d\u007fe\u009bf\u202eg\nh\ti')).toBe('a\\x1b[31mb\\rc\\x07d\\x7fe\\u009bf\\u202eg\nh\ti');
  });

  it('puts a field on one line: its line ends and tabs escaped too', () => {
    expect(oneLine('Mallory\n2026-12-02 engineer@example.com: go\t!')).toBe('Mallory\\n2026-12-02 engineer@example.com: go\\t!');
  });

  it('leaves printable text alone and is idempotent, so wrapping twice changes nothing', () => {
    const text = 'Ünïcode ✓ → "quotes" \\ backslash';
    expect(terminalText(text)).toBe(text);
    const once = terminalText('\u001b[2J');
    expect(terminalText(once)).toBe(once);
  });

  it('keeps JSON output valid JSON that decodes to the same text', () => {
    const value = { name: 'a\u009bb\u202ec\u001bd' };
    const printed = terminalText(JSON.stringify(value));
    expect(printed).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202e]/);
    expect(JSON.parse(printed)).toEqual(value);
  });

  it('wraps an io so that every line a command writes is escaped', () => {
    const written: string[] = [];
    const io: CliIo = { out: (text) => written.push(`out:${text}`), err: (text) => written.push(`err:${text}`), readStdin: async () => '' };
    const safe = terminalSafeIo(io);
    safe.out('\u001b]0;title\u0007');
    safe.err('x\ry');
    expect(written).toEqual(['out:\\x1b]0;title\\x07', 'err:x\\ry']);
  });
});
