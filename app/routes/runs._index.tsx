import type { LoaderFunctionArgs, MetaFunction } from '@remix-run/node';
import { Form, Link, useLoaderData, useNavigate, useNavigation } from '@remix-run/react';
import {
  columnFilteringFeature,
  createColumnHelper,
  functionalUpdate,
  rowPaginationFeature,
  rowSortingFeature,
  tableFeatures,
  useTable,
  type ColumnFiltersState,
  type PaginationState,
  type SortingState,
} from '@tanstack/react-table';
import { useMemo } from 'react';
import { z } from 'zod';
import { RUN_KINDS, RUN_STATES } from '../../db/schema/index';
import { requirePermission, pageViewerOf } from '../auth/require.server';
import { AppHeader } from '../components/app-header';
import { formatDuration, formatUtc } from '../runtime/format';
import { RehearsalChip, StatusBadge, statusInfo } from '../components/status-badge';
import { loadRunHistory } from '../web/history-page.server';
import { RUN_SORT_KEYS, type RunSortKey } from '../runs/run-sort';

export const meta: MetaFunction = () => [{ title: 'History · Runsheet' }];

export async function loader({ request, context }: LoaderFunctionArgs) {
  const user = await requirePermission(request, context, 'view');
  const query = parseHistoryQuery(new URL(request.url).searchParams);
  const history = await loadRunHistory(context.runtime, {
    filters: { plan: query.plan, target: query.target, kind: query.kind, state: query.state, person: query.person },
    sort: { key: query.sort, direction: query.dir },
    limit: query.size,
    offset: (query.page - 1) * query.size,
  });
  const { facets, labels } = history;
  return {
    user: pageViewerOf(user),
    query,
    total: history.total,
    runs: history.runs,
    facets: { ...facets, targets: facets.targets.map((name) => ({ name, label: labels.get(name) ?? name })), kinds: RUN_KINDS, states: RUN_STATES },
  };
}

const PAGE_SIZES = [25, 50, 100] as const;
const DEFAULTS = { sort: 'created' as RunSortKey, dir: 'desc' as const, page: 1, size: 25 };

/** Anything in the URL that is not a known value falls back to "no filter" or the default: a shared link never errors. */
const optionalText = z
  .string()
  .trim()
  .max(320)
  .optional()
  .transform((value) => value || undefined)
  .catch(undefined);

const HistoryQuerySchema = z.object({
  plan: optionalText,
  target: optionalText,
  kind: z.enum(RUN_KINDS).optional().catch(undefined),
  state: z.enum(RUN_STATES).optional().catch(undefined),
  person: optionalText,
  sort: z.enum(RUN_SORT_KEYS).catch(DEFAULTS.sort),
  dir: z.enum(['asc', 'desc']).catch(DEFAULTS.dir),
  page: z.coerce.number().int().min(1).max(1_000_000).catch(DEFAULTS.page),
  size: z.coerce
    .number()
    .refine((value) => (PAGE_SIZES as readonly number[]).includes(value))
    .catch(DEFAULTS.size),
});
type HistoryQuery = z.infer<typeof HistoryQuerySchema>;

function parseHistoryQuery(params: URLSearchParams): HistoryQuery {
  const raw = Object.fromEntries(params);
  return HistoryQuerySchema.parse({ ...raw, sort: raw.sort ?? DEFAULTS.sort, dir: raw.dir ?? DEFAULTS.dir, page: raw.page ?? DEFAULTS.page, size: raw.size ?? DEFAULTS.size });
}

/** The URL of the history with some parameters changed; defaults and empty values are left out, so links stay short. */
function historyHref(query: HistoryQuery, changes: Partial<Record<keyof HistoryQuery, string | number | undefined>>): string {
  const next: Record<string, string | number | undefined> = { ...query, ...changes };
  const params = new URLSearchParams();
  for (const key of ['plan', 'target', 'kind', 'state', 'person', 'sort', 'dir', 'page', 'size'] as const) {
    const value = next[key];
    if (value === undefined || value === '' || value === DEFAULTS[key as keyof typeof DEFAULTS]) continue;
    params.set(key, String(value));
  }
  const search = params.toString();
  return search ? `/runs?${search}` : '/runs';
}

type HistoryRow = ReturnType<typeof useLoaderData<typeof loader>>['runs'][number];

// Sorting, filtering and paging happen in the database; the table only holds their state (from the URL).
const features = tableFeatures({ rowSortingFeature, rowPaginationFeature, columnFilteringFeature });
const helper = createColumnHelper<typeof features, HistoryRow>();

/** Table column id → the sort key the server knows (the Run column sorts by creation). */
const SORT_KEY_OF_COLUMN: Record<string, RunSortKey> = {
  run: 'created',
  plan: 'plan',
  target: 'target',
  state: 'state',
  started: 'started',
  finished: 'finished',
  duration: 'duration',
};
const COLUMN_OF_SORT_KEY = Object.fromEntries(Object.entries(SORT_KEY_OF_COLUMN).map(([column, key]) => [key, column])) as Record<RunSortKey, string>;
const SORT_LABELS: Record<RunSortKey, string> = {
  created: 'Created',
  started: 'Started',
  finished: 'Finished',
  duration: 'Duration',
  plan: 'Plan',
  target: 'Target',
  state: 'State',
};
const NEWEST_FIRST = new Set(['run', 'started', 'finished', 'duration']);

const columns = helper.columns([
  helper.accessor('id', {
    id: 'run',
    header: 'Run',
    cell: (info) => {
      const run = info.row.original;
      return (
        <div className="whitespace-nowrap">
          <Link to={`/runs/${run.id}/report`} className="font-mono text-sm font-medium text-blue-700 hover:underline" aria-label={`Report of run ${run.id.slice(0, 8)}`}>
            {run.id.slice(0, 8)}
          </Link>
          <Link to={`/runs/${run.id}`} className="ml-2 text-xs text-ink-muted underline hover:text-blue-700" aria-label={`Live view of run ${run.id.slice(0, 8)}`}>
            live
          </Link>
        </div>
      );
    },
  }),
  helper.accessor('planId', {
    id: 'plan',
    header: 'Plan',
    cell: (info) => (
      <div>
        <Link to={`/plans/${info.getValue()}`} className="whitespace-nowrap font-mono text-xs hover:underline">
          {info.getValue()}
        </Link>
        <div className="font-mono text-[11px] text-ink-muted" title={`Plan checksum ${info.row.original.planChecksum}`}>
          {info.row.original.planChecksum.slice(0, 12)}
        </div>
      </div>
    ),
  }),
  helper.accessor('target', { id: 'target', header: 'Target', cell: (info) => info.row.original.targetLabel }),
  helper.accessor('kind', {
    id: 'kind',
    header: 'Kind',
    enableSorting: false,
    cell: (info) => (info.getValue() === 'rehearsal' ? <RehearsalChip /> : <span className="text-xs text-ink-muted">Execute</span>),
  }),
  helper.accessor('state', { id: 'state', header: 'State', cell: (info) => <StatusBadge status={info.getValue()} /> }),
  helper.accessor('reason', {
    id: 'reason',
    header: 'Reason',
    enableSorting: false,
    cell: (info) => <span className="line-clamp-2 max-w-xs text-xs text-ink-muted" title={info.getValue() ?? undefined}>{info.getValue() ?? '—'}</span>,
  }),
  helper.accessor('executedBy', { id: 'executedBy', header: 'Executed by', enableSorting: false, cell: (info) => <Person email={info.getValue()} /> }),
  helper.accessor('signedOffBy', { id: 'signedOffBy', header: 'Signed off by', enableSorting: false, cell: (info) => <Person email={info.getValue()} /> }),
  helper.accessor('startedAt', { id: 'started', header: 'Started', sortDescFirst: true, cell: (info) => <Timestamp iso={info.getValue()} /> }),
  helper.accessor('finishedAt', { id: 'finished', header: 'Finished', sortDescFirst: true, cell: (info) => <Timestamp iso={info.getValue()} /> }),
  helper.accessor('durationMs', {
    id: 'duration',
    header: 'Duration',
    sortDescFirst: true,
    cell: (info) => {
      const ms = info.getValue();
      if (ms !== null) return <span className="whitespace-nowrap tabular-nums">{formatDuration(ms)}</span>;
      return <span className="text-ink-faint">{info.row.original.startedAt ? 'running' : '—'}</span>;
    },
  }),
]);

const FILTERED_COLUMNS = ['plan', 'target', 'kind', 'state'] as const;

export default function RunHistory() {
  const { user, query, total, runs, facets } = useLoaderData<typeof loader>();
  const navigate = useNavigate();
  const navigation = useNavigation();
  const loading = navigation.state === 'loading' && navigation.location?.pathname === '/runs';

  // The table's state is the URL's (the loader parsed it); a new URL is new state.
  const sorting = useMemo<SortingState>(() => [{ id: COLUMN_OF_SORT_KEY[query.sort], desc: query.dir === 'desc' }], [query]);
  const pagination = useMemo<PaginationState>(() => ({ pageIndex: query.page - 1, pageSize: query.size }), [query]);
  const columnFilters = useMemo<ColumnFiltersState>(() => FILTERED_COLUMNS.flatMap((id) => (query[id] ? [{ id, value: query[id] }] : [])), [query]);

  const table = useTable({
    features,
    columns,
    data: runs,
    getRowId: (row) => row.id,
    manualSorting: true,
    manualPagination: true,
    manualFiltering: true,
    enableSortingRemoval: false,
    enableMultiSort: false,
    rowCount: total,
    state: { sorting, pagination, columnFilters },
    // Every change becomes a URL: the loader does the work, and the address can be shared.
    onSortingChange: (updater) => {
      const [first] = functionalUpdate(updater, sorting);
      if (first) navigate(historyHref(query, { sort: SORT_KEY_OF_COLUMN[first.id], dir: first.desc ? 'desc' : 'asc', page: 1 }));
    },
    onPaginationChange: (updater) => {
      const next = functionalUpdate(updater, pagination);
      navigate(historyHref(query, { page: next.pageSize === query.size ? next.pageIndex + 1 : 1, size: next.pageSize }));
    },
    onColumnFiltersChange: (updater) => {
      const next = functionalUpdate(updater, columnFilters);
      const value = (id: string) => next.find((filter) => filter.id === id)?.value as string | undefined;
      navigate(historyHref(query, { plan: value('plan'), target: value('target'), kind: value('kind'), state: value('state'), page: 1 }));
    },
  });

  const pageCount = Math.max(1, table.getPageCount());
  const firstShown = total === 0 ? 0 : (query.page - 1) * query.size + 1;
  const lastShown = Math.min(total, query.page * query.size);
  const filtered = Boolean(query.plan || query.target || query.kind || query.state || query.person);
  const filterValue = (id: (typeof FILTERED_COLUMNS)[number]) => (table.getColumn(id)?.getFilterValue() as string | undefined) ?? '';

  return (
    <>
      <AppHeader user={user} />
      <main className="mx-auto max-w-7xl px-4 py-6">
        <h1 className="text-xl font-semibold">History</h1>
        <p className="mt-1 text-ink-muted">Every run of every plan, newest first. Rehearsals are marked; open a run for its report and signed log.</p>

        <Form method="get" action="/runs" className="mt-4 rounded border border-slate-200 bg-white p-3" aria-label="Filter and sort runs">
          <div className="grid grid-cols-2 gap-x-3 gap-y-2 sm:grid-cols-4 lg:grid-cols-8">
            <FilterSelect name="plan" label="Plan" value={filterValue('plan')} options={facets.plans.map((plan) => ({ value: plan, label: plan }))} all="All plans" />
            <FilterSelect
              name="target"
              label="Target"
              value={filterValue('target')}
              options={facets.targets.map((target) => ({ value: target.name, label: target.label }))}
              all="All targets"
            />
            <FilterSelect
              name="kind"
              label="Kind"
              value={filterValue('kind')}
              options={facets.kinds.map((kind) => ({ value: kind, label: kind === 'rehearsal' ? 'Rehearsal' : 'Execute' }))}
              all="Both kinds"
            />
            <FilterSelect
              name="state"
              label="State"
              value={filterValue('state')}
              options={facets.states.map((state) => ({ value: state, label: statusInfo(state).label }))}
              all="Any state"
            />
            <FilterSelect name="person" label="Person" value={query.person ?? ''} options={facets.people.map((person) => ({ value: person, label: person }))} all="Anyone" />
            <FilterSelect name="sort" label="Sort by" value={query.sort} options={RUN_SORT_KEYS.map((key) => ({ value: key, label: SORT_LABELS[key] }))} />
            <FilterSelect
              name="dir"
              label="Order"
              value={query.dir}
              options={[
                { value: 'desc', label: 'Descending' },
                { value: 'asc', label: 'Ascending' },
              ]}
            />
            <FilterSelect name="size" label="Per page" value={String(query.size)} options={PAGE_SIZES.map((size) => ({ value: String(size), label: String(size) }))} />
          </div>
          <div className="mt-3 flex flex-wrap items-center gap-3">
            <button type="submit" className="rounded bg-slate-800 px-3 py-1.5 text-xs font-medium text-white hover:bg-slate-700">
              Apply
            </button>
            {filtered ? (
              <Link
                to={historyHref(query, { plan: undefined, target: undefined, kind: undefined, state: undefined, person: undefined, page: 1 })}
                className="text-xs text-blue-700 underline"
              >
                Clear filters
              </Link>
            ) : null}
            <p className="text-xs text-ink-muted" aria-live="polite">
              {loading ? 'Loading…' : total === 0 ? 'No runs' : `Runs ${firstShown}–${lastShown} of ${total}`}
            </p>
          </div>
        </Form>

        <ul className={`mt-4 space-y-2 md:hidden ${loading ? 'opacity-60' : ''}`} aria-label="Runs">
          {table.getRowModel().rows.map((row) => (
            <RunCard key={row.id} run={row.original} />
          ))}
        </ul>

        <div
          className={`mt-4 overflow-x-auto rounded border border-slate-200 bg-white ${runs.length > 0 ? 'hidden md:block' : ''} ${loading ? 'opacity-60' : ''}`}
          tabIndex={0}
          role="region"
          aria-label="Runs table"
        >
          <table className={`w-full text-left text-xs ${runs.length === 0 ? 'hidden md:table' : ''}`}>
            <caption className="sr-only">
              Runs {firstShown}–{lastShown} of {total}, sorted by {SORT_LABELS[query.sort].toLowerCase()} {query.dir === 'desc' ? 'descending' : 'ascending'}
            </caption>
            <thead className="bg-slate-50 text-xs uppercase tracking-wide text-ink-muted">
              {table.getHeaderGroups().map((group) => (
                <tr key={group.id}>
                  {group.headers.map((header) => {
                    const sorted = header.column.getIsSorted();
                    const canSort = header.column.getCanSort() && header.column.id in SORT_KEY_OF_COLUMN;
                    const next = header.column.getNextSortingOrder() || (NEWEST_FIRST.has(header.column.id) ? 'desc' : 'asc');
                    return (
                      <th
                        key={header.id}
                        scope="col"
                        className="whitespace-nowrap px-2 py-2 font-semibold"
                        aria-sort={sorted === 'asc' ? 'ascending' : sorted === 'desc' ? 'descending' : undefined}
                      >
                        {canSort ? (
                          <Link
                            to={historyHref(query, { sort: SORT_KEY_OF_COLUMN[header.column.id], dir: next, page: 1 })}
                            className="inline-flex items-center gap-1 uppercase hover:text-ink hover:underline"
                            title={`Sort by ${SORT_LABELS[SORT_KEY_OF_COLUMN[header.column.id]!].toLowerCase()}, ${next === 'desc' ? 'descending' : 'ascending'}`}
                          >
                            <table.FlexRender header={header} />
                            <span aria-hidden="true" className={sorted ? 'text-ink' : 'text-ink-faint'}>
                              {sorted === 'asc' ? '▲' : sorted === 'desc' ? '▼' : '↕'}
                            </span>
                          </Link>
                        ) : (
                          <table.FlexRender header={header} />
                        )}
                      </th>
                    );
                  })}
                </tr>
              ))}
            </thead>
            <tbody className="divide-y divide-slate-100">
              {table.getRowModel().rows.map((row) => {
                const rehearsal = row.original.kind === 'rehearsal';
                return (
                  <tr key={row.id} className={`align-top ${rehearsal ? 'bg-violet-50/60' : ''}`} data-kind={row.original.kind}>
                    {row.getAllCells().map((cell, index) => (
                      <td key={cell.id} className={`px-2 py-2 ${index === 0 && rehearsal ? 'border-l-4 border-violet-400' : index === 0 ? 'border-l-4 border-transparent' : ''}`}>
                        <table.FlexRender cell={cell} />
                      </td>
                    ))}
                  </tr>
                );
              })}
            </tbody>
          </table>
          {runs.length === 0 ? (
            <p className="p-4 text-ink-muted">
              {total > 0 ? (
                <>
                  No runs on page {query.page}.{' '}
                  <Link to={historyHref(query, { page: 1 })} className="text-blue-700 underline">
                    First page
                  </Link>
                </>
              ) : filtered ? (
                <>
                  No runs match these filters.{' '}
                  <Link to="/runs" className="text-blue-700 underline">
                    Show every run
                  </Link>
                </>
              ) : (
                <>
                  No runs yet. A run starts from a plan&apos;s checklist:{' '}
                  <Link to="/" className="text-blue-700 underline">
                    Plans
                  </Link>
                  .
                </>
              )}
            </p>
          ) : null}
        </div>

        {total > query.size ? (
          <nav aria-label="Pages" className="mt-3 flex flex-wrap items-center gap-2 text-xs">
            <PageLink to={historyHref(query, { page: 1 })} enabled={table.getCanPreviousPage()} label="First page">
              « First
            </PageLink>
            <PageLink to={historyHref(query, { page: query.page - 1 })} enabled={table.getCanPreviousPage()} label="Previous page">
              ‹ Previous
            </PageLink>
            <span className="px-2 text-ink-muted" aria-current="page">
              Page {query.page} of {pageCount}
            </span>
            <PageLink to={historyHref(query, { page: query.page + 1 })} enabled={table.getCanNextPage()} label="Next page">
              Next ›
            </PageLink>
            <PageLink to={historyHref(query, { page: pageCount })} enabled={table.getCanNextPage()} label="Last page">
              Last »
            </PageLink>
          </nav>
        ) : null}
      </main>
    </>
  );
}

/** A run on a phone: the same facts as a table row, stacked. */
function RunCard({ run }: { run: HistoryRow }) {
  const rehearsal = run.kind === 'rehearsal';
  return (
    <li className={`rounded border bg-white p-3 text-xs ${rehearsal ? 'border-l-4 border-violet-400 bg-violet-50/60' : 'border-slate-200'}`} data-kind={run.kind}>
      <div className="flex flex-wrap items-center gap-2">
        <Link to={`/runs/${run.id}/report`} className="font-mono text-sm font-medium text-blue-700 hover:underline" aria-label={`Report of run ${run.id.slice(0, 8)}`}>
          {run.id.slice(0, 8)}
        </Link>
        <Link to={`/runs/${run.id}`} className="text-ink-muted underline" aria-label={`Live view of run ${run.id.slice(0, 8)}`}>
          live
        </Link>
        <span className="ml-auto flex items-center gap-1">
          {rehearsal ? <RehearsalChip /> : null}
          <StatusBadge status={run.state} />
        </span>
      </div>
      <div className="mt-1 font-mono">{run.planId}</div>
      <dl className="mt-2 grid grid-cols-[auto_1fr] gap-x-3 gap-y-0.5">
        <dt className="text-ink-muted">Target</dt>
        <dd>{run.targetLabel}</dd>
        <dt className="text-ink-muted">Started</dt>
        <dd>{formatUtc(run.startedAt)}</dd>
        <dt className="text-ink-muted">Duration</dt>
        <dd>{run.durationMs !== null ? formatDuration(run.durationMs) : run.startedAt ? 'running' : '—'}</dd>
        <dt className="text-ink-muted">Reason</dt>
        <dd>{run.reason ?? '—'}</dd>
        <dt className="text-ink-muted">Executed by</dt>
        <dd className="truncate">{run.executedBy ?? '—'}</dd>
        <dt className="text-ink-muted">Signed off by</dt>
        <dd className="truncate">{run.signedOffBy ?? '—'}</dd>
      </dl>
    </li>
  );
}

function FilterSelect({ name, label, value, options, all }: { name: string; label: string; value: string; options: { value: string; label: string }[]; all?: string }) {
  const id = `history-${name}`;
  return (
    <div className="flex min-w-0 flex-col gap-0.5">
      <label htmlFor={id} className="text-xs font-medium text-ink-muted">
        {label}
      </label>
      {/* key: a new URL re-renders the select with its new default (uncontrolled, so it works without JavaScript). */}
      <select key={value} id={id} name={name} defaultValue={value} className="w-full min-w-0 rounded border border-slate-300 bg-white px-1.5 py-1 text-xs">
        {all !== undefined ? <option value="">{all}</option> : null}
        {value && !options.some((option) => option.value === value) ? <option value={value}>{value}</option> : null}
        {options.map((option) => (
          <option key={option.value} value={option.value}>
            {option.label}
          </option>
        ))}
      </select>
    </div>
  );
}

function PageLink({ to, enabled, label, children }: { to: string; enabled: boolean; label: string; children: React.ReactNode }) {
  if (!enabled) {
    return (
      <span className="rounded border border-slate-200 px-2 py-1 text-ink-faint" aria-disabled="true">
        {children}
      </span>
    );
  }
  return (
    <Link to={to} aria-label={label} className="rounded border border-slate-300 bg-white px-2 py-1 hover:bg-slate-100">
      {children}
    </Link>
  );
}

function Person({ email }: { email: string | null }) {
  if (!email) return <span className="text-ink-faint">—</span>;
  return (
    <span className="block max-w-48 truncate text-xs" title={email}>
      {email}
    </span>
  );
}

/** Date over time, in UTC: absolute and the same on every screen. */
function Timestamp({ iso }: { iso: string | null }) {
  if (!iso) return <span className="text-ink-faint">—</span>;
  return (
    <time dateTime={iso} className="block whitespace-nowrap text-xs tabular-nums">
      {iso.slice(0, 10)}
      <span className="block text-ink-muted">{iso.slice(11, 19)} UTC</span>
    </time>
  );
}

export { RouteErrorBoundary as ErrorBoundary } from '../components/route-error-boundary';
