/** How the run history may be sorted: shared by the query module and the page (no server code here). */
export const RUN_SORT_KEYS = ['started', 'created', 'finished', 'duration', 'plan', 'target', 'state'] as const;
export type RunSortKey = (typeof RUN_SORT_KEYS)[number];
export type SortDirection = 'asc' | 'desc';
