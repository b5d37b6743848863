import { planErrorLocation, type PlanError } from '../plans/plan-error';

/** A plan's errors, each with its file and line (plans/x/apply.sql:4) and its path in plan.yaml. */
export function PlanErrorList({ errors, className = '' }: { errors: readonly PlanError[]; className?: string }) {
  return (
    <ul className={`list-disc pl-5 text-red-900 ${className}`}>
      {errors.map((error, index) => (
        <li key={index}>
          <span className="font-mono">{planErrorLocation(error)}</span>
          {error.path ? <span className="font-mono"> {error.path}</span> : null}: {error.message}
        </li>
      ))}
    </ul>
  );
}
