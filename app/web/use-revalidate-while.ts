import { useRevalidator } from '@remix-run/react';
import { useEffect } from 'react';

/** While `condition` holds (a run is active, facts are being read again), the page reads itself again every `everyMs`. */
export function useRevalidateWhile(condition: boolean, everyMs: number): void {
  const revalidator = useRevalidator();
  const { revalidate } = revalidator;
  const idle = revalidator.state === 'idle';
  useEffect(() => {
    if (!condition || !idle) return;
    const timer = setTimeout(() => revalidate(), everyMs);
    return () => clearTimeout(timer);
  }, [condition, idle, revalidate, everyMs]);
}
