/**
 * An `object` check in words (docs/decisions/026): what it expects ("index platform.x: present,
 * valid") and what it found ("present, INVALID, unique"), judged from one catalog entry. Pure (no
 * database): the runner (object-check.server.ts) reads the entry with the facts panel's reader,
 * and the pages describe the expectation from the plan alone.
 */
import type { Check, Expectation, ObjectCheck } from '../plans/plan-schema';

export type ObjectKind = 'column' | 'index' | 'constraint' | 'function';

/** The expectation an object check records with its result (the check_results row, the run log). */
export type ObjectExpectation = {
  type: 'object';
  object: ObjectKind;
  /** As the words name it: "platform.organizations.slug", "platform.organizations_slug_key". */
  name: string;
  present: boolean;
  /** The properties asked for (type, nullable, valid, ready, unique, partial, validated, constraint type). */
  properties: Record<string, string | boolean>;
  /** The whole expectation in words: "index platform.organizations_slug_key: present, valid, unique". */
  words: string;
};

/** What the catalog holds for the object (the shared reader's entry, whichever kind). */
export interface FoundObject {
  exists: boolean;
  /** column */
  dataType?: string | null;
  nullable?: boolean | null;
  typeMatches?: boolean | null;
  /** index */
  table?: string | null;
  valid?: boolean | null;
  ready?: boolean | null;
  unique?: boolean | null;
  predicate?: string | null;
  /** constraint */
  validated?: boolean | null;
  type?: string | null;
  /** function */
  signatures?: string[];
  overload?: string | null;
}

export interface ObjectVerdict {
  passed: boolean;
  /** "index platform.organizations_slug_key: present, INVALID, unique" */
  actual: string;
  /** When it did not pass: "index platform.organizations_slug_key: present, INVALID, unique; expected valid". */
  reason?: string;
}

const CONSTRAINT_WORDS: Record<string, string> = {
  check: 'a check constraint',
  foreign_key: 'a foreign key',
  primary_key: 'a primary key',
  unique: 'a unique constraint',
  exclusion: 'an exclusion constraint',
  not_null: 'a not-null constraint',
  trigger: 'a constraint trigger',
};

/** The object a check names: which kind, and its name as the words say it. */
export function objectOf(check: ObjectCheck): { object: ObjectKind; name: string } {
  if (check.column) return { object: 'column', name: `${check.column.schema}.${check.column.table}.${check.column.name}` };
  if (check.index) return { object: 'index', name: `${check.index.schema}.${check.index.name}${check.index.table ? ` on ${check.index.schema}.${check.index.table}` : ''}` };
  if (check.constraint) return { object: 'constraint', name: `${check.constraint.name} on ${check.constraint.schema}.${check.constraint.table}` };
  const fn = check.function!;
  return { object: 'function', name: `${fn.schema}.${fn.name}${fn.args !== undefined ? `(${fn.args})` : ''}` };
}

/** Each property asked for, and how it reads when it holds. */
function expectedProperties(check: ObjectCheck): { key: string; value: string | boolean; words: string }[] {
  const list: { key: string; value: string | boolean; words: string }[] = [];
  const add = (key: string, value: string | boolean | undefined, words: (value: never) => string) => {
    if (value !== undefined) list.push({ key, value, words: words(value as never) });
  };
  if (check.column) {
    add('type', check.column.type, (type: string) => `type ${type}`);
    add('nullable', check.column.nullable, (nullable: boolean) => (nullable ? 'nullable' : 'NOT NULL'));
  } else if (check.index) {
    add('valid', check.index.valid, (valid: boolean) => (valid ? 'valid' : 'INVALID'));
    add('ready', check.index.ready, (ready: boolean) => (ready ? 'ready' : 'not ready'));
    add('unique', check.index.unique, (unique: boolean) => (unique ? 'unique' : 'not unique'));
    add('partial', check.index.partial, (partial: boolean) => (partial ? 'partial' : 'not partial'));
  } else if (check.constraint) {
    add('type', check.constraint.type, (type: string) => CONSTRAINT_WORDS[type] ?? type);
    add('validated', check.constraint.validated, (validated: boolean) => (validated ? 'validated' : 'NOT VALIDATED (NOT VALID)'));
  }
  return list;
}

export function objectExpectation(check: ObjectCheck): ObjectExpectation {
  const { object, name } = objectOf(check);
  const properties = expectedProperties(check);
  const words = `${object} ${name}: ${[check.present ? 'present' : 'absent', ...properties.map((property) => property.words)].join(', ')}`;
  return { type: 'object', object, name, present: check.present, properties: Object.fromEntries(properties.map((property) => [property.key, property.value])), words };
}

/** What a check expects, for any kind: an object check's is derived from the object it names. */
export function expectationOf(check: Check): Expectation | ObjectExpectation {
  return check.kind === 'object' ? objectExpectation(check) : check.expect;
}

/** What was found, in words, after "present": only what the catalog says about the object. */
function foundWords(object: ObjectKind, found: FoundObject): string {
  if (!found.exists) {
    const others = object === 'function' && (found.signatures?.length ?? 0) > 0 ? ` (overloads of the name: ${found.signatures!.join(', ')})` : '';
    return `absent${others}`;
  }
  const words = ['present'];
  switch (object) {
    case 'column':
      words.push(found.dataType ?? 'of unknown type', found.nullable ? 'nullable' : 'NOT NULL');
      break;
    case 'index':
      words.push(found.valid ? 'valid' : 'INVALID');
      if (found.ready === false) words.push('not ready');
      words.push(found.unique ? 'unique' : 'not unique');
      words.push(found.predicate ? `partial (WHERE ${found.predicate})` : 'not partial');
      if (found.table) words.push(`on ${found.table}`);
      break;
    case 'constraint':
      words.push(CONSTRAINT_WORDS[found.type ?? ''] ?? `a constraint of type ${found.type ?? 'unknown'}`, found.validated ? 'validated' : 'NOT VALIDATED (NOT VALID)');
      break;
    case 'function':
      words.push(found.overload ? found.overload : (found.signatures ?? []).join(', '));
      break;
  }
  return words.join(', ');
}

/** Whether one asked-for property holds on what was found. */
function propertyHolds(object: ObjectKind, key: string, value: string | boolean, found: FoundObject): boolean {
  switch (`${object}.${key}`) {
    case 'column.type':
      return found.typeMatches === true;
    case 'column.nullable':
      return found.nullable === value;
    case 'index.valid':
      return found.valid === value;
    case 'index.ready':
      return found.ready === value;
    case 'index.unique':
      return found.unique === value;
    case 'index.partial':
      return (found.predicate !== null && found.predicate !== undefined) === value;
    case 'constraint.type':
      return found.type === value;
    case 'constraint.validated':
      return found.validated === value;
    default:
      return false;
  }
}

/** The check's verdict on what the catalog holds, in words. */
export function judgeObject(check: ObjectCheck, found: FoundObject): ObjectVerdict {
  const { object, name } = objectOf(check);
  const actual = `${object} ${name}: ${foundWords(object, found)}`;
  if (found.exists !== check.present) return { passed: false, actual, reason: `${actual}; expected ${check.present ? 'present' : 'absent'}` };
  if (!found.exists) return { passed: true, actual };
  const unmet = expectedProperties(check).filter((property) => !propertyHolds(object, property.key, property.value, found));
  if (unmet.length === 0) return { passed: true, actual };
  return { passed: false, actual, reason: `${actual}; expected ${unmet.map((property) => property.words).join(', ')}` };
}
