import type { ReactNode } from 'react';
import type { Aged } from '../plans/plan-on-target.server';
import type { SchemaFacts } from '../targets/schema-facts.server';
import type { TargetFacts } from '../targets/target-facts.server';
import { formatAge } from './format';
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

/** The live state of the objects the plan creates: column, index, functions, backfill. */
export function SchemaFactsPanel({ facts, children }: { facts?: Aged<SchemaFacts>; children?: ReactNode }) {
  const backfill = facts?.value.backfill;
  return (
    <Panel title="Schema facts" age={facts?.ageMs} actions={children}>
      {facts ? (
        <ul className="space-y-1 text-xs">
          {facts.value.columns.map((column) => (
            <li key={`${column.schema}.${column.table}.${column.column}`} className="flex flex-wrap items-center gap-2">
              <StatusBadge status={column.exists ? 'present' : 'absent'} />
              <span className="font-mono">
                {column.schema}.{column.table}.{column.column}
              </span>
              {column.exists ? (
                <span className="text-ink-muted">
                  {column.dataType}, {column.nullable ? 'nullable' : 'not null'}
                </span>
              ) : null}
            </li>
          ))}
          {facts.value.indexes.map((index) => (
            <li key={`${index.schema}.${index.name}`} className="flex flex-wrap items-center gap-2">
              <StatusBadge status={index.exists ? (index.valid ? 'valid' : 'not_valid') : 'absent'} label={index.exists ? (index.valid ? 'Valid index' : 'INVALID index') : 'Absent'} />
              <span className="font-mono">
                {index.schema}.{index.name}
              </span>
              {index.predicate ? <span className="font-mono text-ink-muted">WHERE {index.predicate}</span> : null}
            </li>
          ))}
          {facts.value.functions.map((fn) => (
            <li key={`${fn.schema}.${fn.name}`} className="flex flex-wrap items-center gap-2">
              <StatusBadge status={fn.exists ? 'present' : 'absent'} />
              <span className="font-mono">{fn.exists ? fn.signatures.join(', ') : `${fn.schema}.${fn.name}()`}</span>
            </li>
          ))}
          {facts.value.constraints.map((constraint) => (
            <li key={`${constraint.schema}.${constraint.name}`} className="flex flex-wrap items-center gap-2">
              <StatusBadge status={constraint.exists ? 'present' : 'absent'} />
              <span className="font-mono">{constraint.name}</span>
              {constraint.definition ? <span className="font-mono text-ink-muted">{constraint.definition}</span> : null}
            </li>
          ))}
          {backfill ? (
            <li className="pt-1">
              <BackfillGauge percentage={backfill.percentage} withValue={backfill.withValue} total={backfill.total} label={`${backfill.schema}.${backfill.table}.${backfill.column}`} />
            </li>
          ) : null}
        </ul>
      ) : (
        <p className="text-xs text-ink-muted">Not read yet.</p>
      )}
    </Panel>
  );
}

/** The backfill as the seed's Step 4 computes it: the share of rows whose column is set, with the counts. */
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
      <div className="mt-1 h-2 rounded bg-slate-200" role="meter" aria-label={`Backfill of ${label}`} aria-valuemin={0} aria-valuemax={100} aria-valuenow={value}>
        <div className="h-2 rounded bg-emerald-600" style={{ width: `${Math.min(100, value)}%` }} />
      </div>
      <div className="mt-0.5 text-[11px] text-ink-muted">
        {withValue === null || total === null ? 'column absent' : `${withValue.toLocaleString('en-US')} of ${total.toLocaleString('en-US')} rows set`}
      </div>
    </div>
  );
}
