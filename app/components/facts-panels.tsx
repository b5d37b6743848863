import type { ReactNode } from 'react';
import type { Aged } from '../plans/plan-on-target.server';
import type { SchemaFacts } from '../targets/schema-facts.server';
import type { TargetFacts } from '../targets/target-facts.server';
import { formatAge } from '../runtime/format';
import { StatusBadge } from './status-badge';

function Panel({ title, age, children, actions }: { title: string; age?: number; children: ReactNode; actions?: ReactNode }) {
  return (
    <section className="rounded border border-slate-200 bg-white p-3" aria-label={title}>
      <div className="flex items-center gap-2">
        <h2 className="font-semibold">{title}</h2>
        {age !== undefined ? <span className="text-xs text-ink-muted">read {formatAge(age)} ago</span> : null}
        <div className="ml-auto">{actions}</div>
      </div>
      <div className="mt-2">{children}</div>
    </section>
  );
}

/** What Runsheet shows about a target before any write: version, TLS, replica, pooler. */
export function TargetFactsPanel({ label, displayUrl, facts }: { label: string; displayUrl: string; facts?: Aged<TargetFacts> }) {
  return (
    <Panel title={`Target: ${label}`} age={facts?.ageMs}>
      <p className="break-all font-mono text-xs text-ink-muted">{displayUrl}</p>
      {facts ? (
        <dl className="mt-2 grid grid-cols-[auto_1fr] gap-x-3 gap-y-1 text-xs">
          <dt className="text-ink-muted">Server</dt>
          <dd>PostgreSQL {facts.value.serverVersion.version}</dd>
          <dt className="text-ink-muted">TLS</dt>
          <dd>{facts.value.tls.ssl ? <StatusBadge status="pass" label={`TLS ${facts.value.tls.version ?? ''}`} /> : <StatusBadge status="skipped" label="Not encrypted" />}</dd>
          <dt className="text-ink-muted">Replica</dt>
          <dd>{facts.value.readOnlyReplica ? <StatusBadge status="fail" label="Read-only replica (refused)" /> : <StatusBadge status="pass" label="Primary" />}</dd>
          <dt className="text-ink-muted">Pooler</dt>
          <dd>
            {facts.value.transactionPooler.detected ? <StatusBadge status="fail" label="Transaction-mode pooler (refused)" /> : <StatusBadge status="pass" label="Direct connection" />}
          </dd>
          <dt className="text-ink-muted">Role</dt>
          <dd>
            {facts.value.currentUser}
            {facts.value.isSuperuser ? ' (superuser)' : ''}
            {facts.value.canSeeAllSessions ? '' : ' · cannot see other sessions'}
          </dd>
        </dl>
      ) : (
        <p className="mt-2 text-xs text-ink-muted">Not read yet: refresh facts.</p>
      )}
    </Panel>
  );
}

/**
 * The live state of the objects the plan names (its `objects`): columns with their type and
 * nullability, the backfill, functions, indexes with their validity and partial predicate, and
 * constraints. The headings are the kinds of object, never one plan's steps.
 */
export function SchemaFactsPanel({ facts, children, title = 'Schema facts' }: { facts?: Aged<SchemaFacts>; children?: ReactNode; title?: string }) {
  const value = facts?.value;
  const backfill = value?.backfill;
  return (
    <Panel title={title} age={facts?.ageMs} actions={children}>
      {value ? (
        <div className="space-y-3 text-xs">
          {value.columns.length > 0 ? (
            <FactGroup title="Columns">
              {value.columns.map((column) => (
                <li key={`${column.schema}.${column.table}.${column.column}`} className="flex flex-wrap items-center gap-1.5">
                  <span className="font-mono">
                    {column.schema}.{column.table}.{column.column}
                  </span>
                  <StatusBadge status={column.exists ? 'present' : 'absent'} label={column.exists ? 'Exists' : 'Absent'} />
                  {column.exists ? (
                    <>
                      <StatusBadge status={column.matchesPlan ? 'pass' : 'fail'} label={column.dataType ?? '?'} title={column.matchesPlan ? 'the type the plan expects' : 'not the type or nullability the plan expects'} />
                      <StatusBadge status={column.matchesPlan ? 'pass' : 'fail'} label={column.nullable ? 'Nullable' : 'NOT NULL'} />
                    </>
                  ) : null}
                </li>
              ))}
            </FactGroup>
          ) : null}
          {backfill ? (
            <FactGroup title="Backfill">
              <li>
                <BackfillGauge percentage={backfill.percentage} withValue={backfill.withValue} total={backfill.total} label={`${backfill.schema}.${backfill.table}.${backfill.column}`} />
              </li>
            </FactGroup>
          ) : null}
          {value.functions.length > 0 ? (
            <FactGroup title="Functions">
              {value.functions.map((fn) => (
                <li key={`${fn.schema}.${fn.name}`} className="flex flex-wrap items-center gap-1.5">
                  <span className="font-mono">
                    {fn.schema}.{fn.name}
                  </span>
                  <StatusBadge status={fn.exists ? 'present' : 'absent'} label={fn.exists ? 'Exists' : 'Absent'} />
                  {fn.exists ? <span className="font-mono text-ink-muted">{fn.signatures.join(', ')}</span> : null}
                </li>
              ))}
            </FactGroup>
          ) : null}
          {value.indexes.length > 0 ? (
            <FactGroup title="Indexes">
              {value.indexes.map((index) => (
                <li key={`${index.schema}.${index.name}`} className="flex flex-wrap items-center gap-1.5">
                  <span className="font-mono">
                    {index.schema}.{index.name}
                  </span>
                  <StatusBadge status={index.exists ? 'present' : 'absent'} label={index.exists ? 'Exists' : 'Absent'} />
                  {index.exists ? (
                    <>
                      <StatusBadge status={index.valid ? 'valid' : 'not_valid'} label={index.valid ? 'Valid' : 'INVALID'} />
                      <StatusBadge status={index.predicate ? 'pass' : 'skipped'} label={index.predicate ? 'Partial' : 'Not partial'} />
                      {index.predicate ? <span className="font-mono text-ink-muted">WHERE {index.predicate}</span> : null}
                    </>
                  ) : null}
                </li>
              ))}
            </FactGroup>
          ) : null}
          {value.constraints.length > 0 ? (
            <FactGroup title="Constraints">
              {value.constraints.map((constraint) => (
                <li key={`${constraint.schema}.${constraint.name}`} className="flex flex-wrap items-center gap-1.5">
                  <span className="font-mono">{constraint.name}</span>
                  <StatusBadge status={constraint.exists ? 'present' : 'absent'} label={constraint.exists ? 'Exists' : 'Absent'} />
                  {constraint.definition ? <span className="break-all font-mono text-ink-muted">{constraint.definition}</span> : null}
                </li>
              ))}
            </FactGroup>
          ) : null}
        </div>
      ) : (
        <p className="text-xs text-ink-muted">Not read yet.</p>
      )}
    </Panel>
  );
}

function FactGroup({ title, children }: { title: string; children: ReactNode }) {
  return (
    <div>
      <h3 className="text-[11px] font-semibold uppercase tracking-wide text-ink-muted">{title}</h3>
      <ul className="mt-1 space-y-1">{children}</ul>
    </div>
  );
}

/** A backfill: the share of rows whose column is set (count(column) / count(*)), with the counts. */
export function BackfillGauge({ percentage, withValue, total, label }: { percentage: number | null; withValue: number | null; total: number | null; label: string }) {
  const value = percentage ?? 0;
  return (
    <div>
      <div className="flex items-baseline justify-between text-xs">
        <span>
          Backfill of <span className="font-mono">{label}</span>
        </span>
        <span className="font-semibold" data-testid="backfill-percentage">
          {percentage === null ? 'n/a' : `${percentage.toFixed(2)}%`}
        </span>
      </div>
      <div className="mt-1 h-2 rounded bg-slate-200" role="meter" aria-label={`Backfill of ${label}`} aria-valuemin={0} aria-valuemax={100} aria-valuenow={value}
        aria-valuetext={percentage === null ? 'not available' : `${percentage.toFixed(2)}%${withValue !== null && total !== null ? `, ${withValue} of ${total} rows set` : ''}`}
      >
        <div className="h-2 rounded bg-emerald-600" style={{ width: `${Math.min(100, value)}%` }} />
      </div>
      <div className="mt-0.5 text-[11px] text-ink-muted">
        {withValue === null || total === null ? 'column absent' : `${withValue.toLocaleString('en-US')} of ${total.toLocaleString('en-US')} rows set`}
      </div>
    </div>
  );
}
