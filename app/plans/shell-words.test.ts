import { describe, expect, it } from 'vitest';
import { psqlInvocation, tokenizeShell } from './shell-words';

const texts = (source: string) => tokenizeShell(source).commands.map((command) => command.words.map((word) => word.text));

describe('tokenizeShell', () => {
  it('splits words as a shell does: quotes, escapes, continuations, operators', () => {
    expect(texts(`echo 'a b' "c \\"d\\" \\\\ e" f\\ g`)).toEqual([['echo', 'a b', 'c "d" \\ e', 'f g']]);
    expect(texts('cd /tmp && psql -f x.sql; echo done | cat')).toEqual([['cd', '/tmp'], ['psql', '-f', 'x.sql'], ['echo', 'done'], ['cat']]);
    expect(texts('psql \\\n  -c "select 1"\necho next')).toEqual([['psql', '-c', 'select 1'], ['echo', 'next']]);
    expect(texts('echo a#b # a comment')).toEqual([['echo', 'a#b']]);
  });

  it('keeps comments with their lines, and a quoted text with the line it starts on', () => {
    const script = tokenizeShell('# first\nrailway run psql $DATABASE_URL -c "\n  SELECT 1;\n"\n# Expected: No rows\n');
    expect(script.comments).toEqual([
      { text: 'first', line: 1 },
      { text: 'Expected: No rows', line: 5 },
    ]);
    const [command] = script.commands;
    expect(command!.words.map((word) => word.text)).toEqual(['railway', 'run', 'psql', '$DATABASE_URL', '-c', '\n  SELECT 1;\n']);
    expect(command!.words[5]).toMatchObject({ line: 2, column: 35, expandsDollar: false });
  });

  it('reports a $ inside double quotes (the shell expands it) and an unclosed quote', () => {
    expect(tokenizeShell('psql -c "DO $$ BEGIN END $$"').commands[0]!.words[2]!.expandsDollar).toBe(true);
    expect(tokenizeShell("psql -c 'DO $$ BEGIN END $$'").commands[0]!.words[2]!.expandsDollar).toBe(false);
    expect(tokenizeShell('psql -c "select 1\n').problems).toEqual([{ line: 1, message: 'A double quote opened here is not closed.' }]);
  });

  it('reads a here-document as the standard input of its command', () => {
    const script = tokenizeShell("psql \"$DATABASE_URL\" <<'SQL'\nSELECT 1;\nSELECT 2;\nSQL\necho after\n");
    expect(script.commands.map((command) => command.words.map((word) => word.text))).toEqual([['psql', '$DATABASE_URL'], ['echo', 'after']]);
    expect(script.commands[0]!.heredoc).toEqual({ text: 'SELECT 1;\nSELECT 2;', line: 2 });
  });
});

describe('psqlInvocation', () => {
  it('finds -c, --command=, -f and a here-document, wherever psql sits in the command', () => {
    const [a, b, c] = tokenizeShell('railway run psql $DATABASE_URL -c "select 1" -c\'select 2\'\nPGPASSWORD=x /usr/bin/psql --command="select 3" --file=apply.sql\necho psql').commands;
    expect(psqlInvocation(a!)).toMatchObject({ commands: [{ text: 'select 1' }, { text: 'select 2' }], files: [] });
    expect(psqlInvocation(b!)).toMatchObject({ commands: [{ text: 'select 3', line: 2 }], files: [{ path: 'apply.sql', line: 2 }] });
    expect(psqlInvocation(c!)).toBeUndefined();
    const [heredoc] = tokenizeShell('psql <<EOF\nselect 4;\nEOF\n').commands;
    expect(psqlInvocation(heredoc!)?.stdin).toEqual({ text: 'select 4;', line: 2 });
  });
});
