/**
 * A small tokenizer for the shell fences of a runbook (`railway run psql $DATABASE_URL -c "…"`):
 * words as a POSIX shell splits them (quotes, backslashes, line continuations), commands ended by
 * a newline, `;`, `&&`, `||` or `|`, comments, and here-documents. It expands nothing: `$VAR`
 * stays as written, and a `$` inside double quotes is reported, since the shell would expand it
 * (`$$` is its process id) before psql ever saw the SQL. Used by the runbook importer to find the
 * SQL a runbook runs through psql; no regular expression reads the shell text.
 */

export interface ShellWord {
  /** The word after quote removal. */
  text: string;
  /** 1-based line and column of the word's first character; a quoted text's line 1 is this line. */
  line: number;
  column: number;
  /** A `$` inside double quotes: the shell would expand it before the command saw the text. */
  expandsDollar: boolean;
}

export interface ShellCommand {
  words: ShellWord[];
  line: number;
  /** A here-document fed to the command (`psql <<'SQL'`), with the line of its first body line. */
  heredoc?: { text: string; line: number };
}

export interface ShellComment {
  text: string;
  line: number;
}

export interface ShellScript {
  commands: ShellCommand[];
  comments: ShellComment[];
  problems: { line: number; message: string }[];
}

const BLANK = new Set([' ', '\t', '\r']);
const OPERATORS = new Set([';', '&', '|']);
/** Characters a backslash escapes inside double quotes (POSIX); before any other it stays. */
const DOUBLE_QUOTE_ESCAPES = new Set(['"', '\\', '$', '`']);

export function tokenizeShell(source: string): ShellScript {
  const commands: ShellCommand[] = [];
  const comments: ShellComment[] = [];
  const problems: ShellScript['problems'] = [];
  let index = 0;
  let line = 1;
  let column = 1;
  let words: ShellWord[] = [];
  let word: ShellWord | undefined;
  /** Here-documents whose bodies start after the current line, each with its command's words. */
  let pendingHeredocs: { delimiter: string; stripTabs: boolean; words: ShellWord[] }[] = [];

  const peek = (offset = 0) => source[index + offset];
  const advance = () => {
    if (source[index] === '\n') {
      line++;
      column = 1;
    } else column++;
    index++;
  };
  const startWord = () => {
    word ??= { text: '', line, column, expandsDollar: false };
    return word;
  };
  const endWord = () => {
    if (word) words.push(word);
    word = undefined;
  };
  const endCommand = () => {
    endWord();
    if (words.length > 0) commands.push({ words, line: words[0]!.line });
    words = [];
  };
  const readHeredocs = () => {
    for (const pending of pendingHeredocs) {
      const bodyLine = line;
      const body: string[] = [];
      let closed = false;
      while (index < source.length) {
        let end = source.indexOf('\n', index);
        if (end === -1) end = source.length;
        const raw = source.slice(index, end);
        const text = pending.stripTabs ? raw.replace(/^\t+/, '') : raw;
        while (index < end) advance();
        if (index < source.length) advance();
        if (text.trimEnd() === pending.delimiter) {
          closed = true;
          break;
        }
        body.push(text);
      }
      if (!closed) problems.push({ line: bodyLine, message: `The here-document that ends with "${pending.delimiter}" is not closed.` });
      const owner = commands.find((command) => command.words === pending.words);
      if (owner) owner.heredoc = { text: body.join('\n'), line: bodyLine };
    }
    pendingHeredocs = [];
  };
  const readDelimiter = (): string => {
    let delimiter = '';
    while (index < source.length && !BLANK.has(peek()!) && peek() !== '\n' && !OPERATORS.has(peek()!)) {
      const char = peek()!;
      if (char === "'" || char === '"') {
        advance();
        while (index < source.length && peek() !== char && peek() !== '\n') {
          delimiter += peek();
          advance();
        }
        if (peek() === char) advance();
        continue;
      }
      if (char !== '\\') delimiter += char;
      advance();
    }
    return delimiter;
  };

  while (index < source.length) {
    const char = peek()!;
    if (char === '\\' && peek(1) === '\n') {
      advance();
      advance();
      continue;
    }
    if (char === '\n') {
      endCommand();
      advance();
      readHeredocs();
      continue;
    }
    if (BLANK.has(char)) {
      endWord();
      advance();
      continue;
    }
    if (char === '#' && !word) {
      const commentLine = line;
      let text = '';
      advance();
      while (index < source.length && peek() !== '\n') {
        text += peek();
        advance();
      }
      comments.push({ text: text.trim(), line: commentLine });
      continue;
    }
    if (OPERATORS.has(char)) {
      endCommand();
      const doubled = peek(1) === char;
      advance();
      if (doubled) advance();
      continue;
    }
    if (char === '<' && peek(1) === '<' && peek(2) !== '<') {
      endWord();
      advance();
      advance();
      const stripTabs = peek() === '-';
      if (stripTabs) advance();
      while (index < source.length && BLANK.has(peek()!)) advance();
      const delimiter = readDelimiter();
      if (delimiter === '') problems.push({ line, message: 'A here-document (<<) without its delimiter word.' });
      else pendingHeredocs.push({ delimiter, stripTabs, words });
      continue;
    }
    if (char === "'") {
      const at = line;
      const target = startWord();
      advance();
      while (index < source.length && peek() !== "'") {
        target.text += peek();
        advance();
      }
      if (index >= source.length) problems.push({ line: at, message: 'A single quote opened here is not closed.' });
      else advance();
      continue;
    }
    if (char === '"') {
      const at = line;
      const target = startWord();
      advance();
      while (index < source.length && peek() !== '"') {
        const inner = peek()!;
        if (inner === '\\' && peek(1) === '\n') {
          advance();
          advance();
          continue;
        }
        if (inner === '\\' && DOUBLE_QUOTE_ESCAPES.has(peek(1) ?? '')) {
          advance();
          target.text += peek();
          advance();
          continue;
        }
        if (inner === '$') target.expandsDollar = true;
        target.text += inner;
        advance();
      }
      if (index >= source.length) problems.push({ line: at, message: 'A double quote opened here is not closed.' });
      else advance();
      continue;
    }
    if (char === '\\') {
      const target = startWord();
      advance();
      if (index < source.length) {
        target.text += peek();
        advance();
      }
      continue;
    }
    startWord().text += char;
    advance();
  }
  endCommand();
  readHeredocs();
  return { commands, comments, problems };
}

/** Commands that run another command given to them (where psql may follow). */
const PSQL_WRAPPERS = new Set(['railway', 'heroku', 'docker', 'kubectl', 'sudo', 'env', 'time', 'nice', 'timeout', 'exec', 'doppler', 'op', 'aws-vault', 'fly', 'flyctl', 'render']);

export interface PsqlInvocation {
  /** The psql word (where the command is). */
  line: number;
  /** Each `-c` / `--command` text, with the line its first line is on. */
  commands: { text: string; line: number; expandsDollar: boolean }[];
  /** Each `-f` / `--file` path. */
  files: { path: string; line: number }[];
  /** A here-document fed to psql, when there is one. */
  stdin?: { text: string; line: number };
}

/** The psql run by a command (`psql …`, `railway run psql …`, `PGPASSWORD=… /usr/bin/psql …`), if any. */
export function psqlInvocation(command: ShellCommand): PsqlInvocation | undefined {
  const isPsql = (word: ShellWord) => word.text === 'psql' || word.text.endsWith('/psql') || word.text === 'pg:psql';
  // Leading VAR=value assignments, then psql itself or a command that runs another (railway run, docker exec …).
  const first = command.words.findIndex((word) => !/^[A-Za-z_][A-Za-z0-9_]*=/.test(word.text));
  const head = command.words[first];
  if (!head) return undefined;
  const at = isPsql(head) ? first : PSQL_WRAPPERS.has(head.text) ? command.words.findIndex((word, position) => position > first && isPsql(word)) : -1;
  if (at === -1) return undefined;
  const invocation: PsqlInvocation = { line: command.words[at]!.line, commands: [], files: [] };
  const args = command.words.slice(at + 1);
  for (let position = 0; position < args.length; position++) {
    const arg = args[position]!;
    const option = optionValue(arg, args[position + 1], ['-c', '--command']);
    if (option) {
      invocation.commands.push({ text: option.value.text, line: option.value.line, expandsDollar: option.value.expandsDollar });
      if (option.consumedNext) position++;
      continue;
    }
    const file = optionValue(arg, args[position + 1], ['-f', '--file']);
    if (file) {
      invocation.files.push({ path: file.value.text, line: file.value.line });
      if (file.consumedNext) position++;
    }
  }
  if (command.heredoc) invocation.stdin = command.heredoc;
  return invocation;
}

/** `-c TEXT`, `-cTEXT`, `--command TEXT` and `--command=TEXT`. */
function optionValue(arg: ShellWord, next: ShellWord | undefined, names: [short: string, long: string]): { value: ShellWord; consumedNext: boolean } | undefined {
  const [short, long] = names;
  if (arg.text === short || arg.text === long) return next ? { value: next, consumedNext: true } : undefined;
  if (arg.text.startsWith(`${long}=`)) return { value: { ...arg, text: arg.text.slice(long.length + 1) }, consumedNext: false };
  if (arg.text.startsWith(short) && !arg.text.startsWith('--') && arg.text.length > short.length) return { value: { ...arg, text: arg.text.slice(short.length) }, consumedNext: false };
  return undefined;
}
