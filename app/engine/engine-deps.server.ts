/**
 * What the execution engine talks to, passed in by its callers (the command line, the web app,
 * tests), and the errors it answers with. Nothing here imports the web framework.
 */
import os from 'node:os';
import type pg from 'pg';
import type { Permission, Role } from '../auth/permissions';
import type { Store } from '../runtime/store.server';
import { findTarget as findConfiguredTarget, type Target } from '../targets/targets.server';

export interface EngineDeps {
  /** Runsheet's own store: runs, run log, check results. */
  store: Pick<Store, 'pool' | 'db'>;
  /** The plans folder: a run is created from the plan as it is there now. */
  plansDir: string;
  /** Ed25519 PKCS#8 PEM: signs the run log at each phase end and at completion. */
  signingKeyPem: string;
  /** A small shared pool per target, for checks, facts and cancelling (never for applying). */
  targetPool(name: string): pg.Pool;
  /** Where a target is and its rules; default: TARGET_<NAME>_URL and runsheet.config.ts. */
  findTarget?(name: string): Target | undefined;
}

/** Who acts: a signed-in account (the web app) or the account named by `--as` (the command line). */
export interface EngineActor {
  email: string;
  role: Role;
}

export function resolveTarget(deps: Pick<EngineDeps, 'findTarget'>, name: string): Target | undefined {
  return deps.findTarget ? deps.findTarget(name) : findConfiguredTarget(name);
}

/** `host:pid` of this process, stored on the run it drives. */
export function ownerProcess(): string {
  return `${os.hostname()}:${process.pid}`;
}

export class EngineError extends Error {
  override name = 'EngineError';
}

export class RunNotFoundError extends EngineError {
  override name = 'RunNotFoundError';
}

/** The actor's role does not allow the action (logged as 'action.refused'). */
export class PermissionRefusedError extends EngineError {
  override name = 'PermissionRefusedError';
  constructor(
    message: string,
    readonly action: Permission,
  ) {
    super(message);
  }
}

/** The request does not fit the run (an unknown prerequisite, an empty note, a wrong run kind). */
export class InvalidRunRequestError extends EngineError {
  override name = 'InvalidRunRequestError';
}

/** The run is not in a state that allows the action (e.g. executing a run that already ran). */
export class RunStateError extends EngineError {
  override name = 'RunStateError';
}

export interface Gate {
  id: string;
  label: string;
  passed: boolean;
  detail: string;
  /** Judged only when executing (the typed target name, the executor for four-eyes). */
  atExecute?: boolean;
}

/** One or more gates are open: nothing was changed on the target. */
export class GateRefusedError extends EngineError {
  override name = 'GateRefusedError';
  constructor(readonly openGates: Gate[]) {
    super(`Refused: ${openGates.length} gate${openGates.length === 1 ? ' is' : 's are'} open:\n${openGates.map((gate) => `  - ${gate.label}: ${gate.detail}`).join('\n')}`);
  }
}

/** Another run holds the target (the store's one-active-run index said so). */
export class AlreadyRunningError extends EngineError {
  override name = 'AlreadyRunningError';
}

/** The target's advisory lock is held by another session: nothing was changed. */
export class LockHeldError extends EngineError {
  override name = 'LockHeldError';
}

/** The target may not be written to (a read-only replica, a transaction-mode pooler). */
export class TargetRefusedError extends EngineError {
  override name = 'TargetRefusedError';
}

export { TargetUnreachableError } from '../checks/plan-checks.server';
