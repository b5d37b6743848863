/**
 * What the command line prints goes to a terminal, which obeys control characters: an account
 * name holding ESC sequences could clear the screen, recolour or rewrite lines, a carriage return
 * could print over a line. Every byte of output passes through `terminalText`; a field that must
 * stay on its line (a name in a table) goes through `oneLine` as well.
 */

/**
 * C0 controls, DEL, C1 controls (U+009B is a one-character CSI in some terminals), and the
 * invisible bidirectional controls that can reorder what a line seems to say.
 */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

function visible(character: string): string {
  switch (character) {
    case '\n':
      return '\\n';
    case '\r':
      return '\\r';
    case '\t':
      return '\\t';
  }
  const code = character.codePointAt(0)!;
  // Above DEL as \u…: JSON.stringify leaves those raw, and \u009b is still valid JSON where \x9b is not.
  return code <= 0x7f ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** Output for a terminal: line ends and tabs stay, every other control character is shown escaped (\x1b). */
export function terminalText(text: string): string {
  return text.replace(CONTROL, (character) => (character === '\n' || character === '\t' ? character : visible(character)));
}

/** A user-supplied field shown inside a line: every control character escaped, line ends included. */
export function oneLine(text: string): string {
  return text.replace(CONTROL, visible);
}
