/** A check's expectation in words, for pages, the CLI and the Markdown report. */
export function describeExpectation(expect: { type: string } & Record<string, unknown>): string {
  switch (expect.type) {
    case 'no_rows':
      return 'no rows';
    case 'exists':
      return 'at least one row';
    case 'rows':
      return `exactly ${JSON.stringify(expect.rows)}`;
    case 'value':
      return `${String(expect.column ?? 'value')} ${String(expect.op)} ${JSON.stringify(expect.value)}`;
    case 'sqlstate':
      return `fails with SQLSTATE ${String(expect.sqlstate)}`;
    case 'record':
      return 'recorded';
    case 'object':
      // An object check's expectation carries its own words ("index platform.x: present, valid").
      return String(expect.words);
    case 'http':
      return `HTTP ${String(expect.status)}${Array.isArray(expect.json_has) && expect.json_has.length ? `, has ${expect.json_has.join(', ')}` : ''}`;
    default:
      return expect.type;
  }
}
