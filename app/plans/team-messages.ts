/**
 * Filling a plan's team messages (plan-schema.ts team_messages): each {{placeholder}} gets the
 * run's fact, and one not known yet reads "[executor: to be filled]". One filler for every place a
 * message is shown or sent: the copy buttons of the plan page, and the Slack notifications.
 */
import { formatUtc } from '../runtime/format';
import type { TeamMessagePlaceholder } from './plan-schema';

const PLACEHOLDER = /\{\{\s*([a-z_]+)\s*\}\}/g;

export type TeamMessageValues = Partial<Record<TeamMessagePlaceholder, string | undefined>>;

export interface FilledTeamMessage {
  notify: string[];
  text: string;
  /** The placeholders not known yet (left as "[name: to be filled]"). */
  unfilled: string[];
}

export function fillTeamMessage(message: { notify: string[]; body: string }, values: TeamMessageValues): FilledTeamMessage {
  const unfilled = new Set<string>();
  const text = message.body.replace(PLACEHOLDER, (_whole, name: string) => {
    const value = name in values ? values[name as TeamMessagePlaceholder] : undefined;
    if (value) return value;
    unfilled.add(name);
    return `[${name.replace(/_/g, ' ')}: to be filled]`;
  });
  return { notify: message.notify, text: text.trimEnd(), unfilled: [...unfilled] };
}

/** The facts of a run a team message is filled from. */
export interface TeamMessageFacts {
  target: { label: string; name: string };
  checksum: string;
  planId: string;
  run?: { id: string; startedAt: Date | null; executedBy: string | null; finishedAt: Date | null; outcome?: { rollback?: { by?: string | null; finishedAt?: string | null } } | null };
}

/**
 * The placeholder values of one message: the pre message names the executor (once known); the
 * post message also the apply's end; the rollback message who rolled back and when.
 */
export function teamMessageValues(facts: TeamMessageFacts, which: 'pre' | 'post' | 'rollback'): TeamMessageValues {
  const { run } = facts;
  const common: TeamMessageValues = {
    target: facts.target.label,
    target_name: facts.target.name,
    checksum: facts.checksum,
    plan: facts.planId,
    run: run?.id,
    started_at: run?.startedAt ? formatUtc(run.startedAt.toISOString()) : undefined,
  };
  if (which === 'pre') return { ...common, executor: run?.executedBy ?? undefined };
  if (which === 'post') return { ...common, executor: run?.executedBy ?? undefined, finished_at: run?.finishedAt ? formatUtc(run.finishedAt.toISOString()) : undefined };
  const rollback = run?.outcome?.rollback;
  return { ...common, executor: rollback?.by ?? undefined, finished_at: rollback?.finishedAt ? formatUtc(rollback.finishedAt) : undefined };
}
