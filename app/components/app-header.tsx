import { Form, NavLink } from '@remix-run/react';
import { ROLE_LABELS, can, type Role } from '../accounts/permissions';

export interface HeaderUser {
  email: string;
  name: string;
  role: Role;
  /** Proxy (single sign-on) users sign out at their identity provider, not here. ('token' is the JSON API's: never a page.) */
  via: 'session' | 'proxy' | 'token';
}

const ROLE_BADGE: Record<Role, string> = {
  viewer: 'bg-slate-100 text-slate-700 ring-slate-300',
  tpm: 'bg-sky-50 text-sky-800 ring-sky-300',
  engineer: 'bg-amber-50 text-amber-900 ring-amber-300',
  admin: 'bg-violet-50 text-violet-800 ring-violet-300',
};

const navClass = ({ isActive }: { isActive: boolean }) =>
  `rounded px-2 py-1 ${isActive ? 'bg-slate-800 text-white' : 'text-slate-200 hover:bg-slate-700 hover:text-white'}`;

/** The signed-in header: where you are, who you are, your role, and signing out. */
export function AppHeader({ user }: { user: HeaderUser }) {
  return (
    <header className="no-print border-b border-slate-700 bg-slate-900 text-slate-100">
      <div className="mx-auto flex max-w-7xl flex-wrap items-center gap-x-4 gap-y-2 px-4 py-2">
        <a href={can(user, 'view') ? '/' : '/admin/accounts'} className="font-semibold tracking-tight text-white">
          Runsheet
        </a>
        <nav aria-label="Main" className="flex items-center gap-1 text-sm">
          {can(user, 'view') ? (
            <NavLink to="/" end className={navClass}>
              Plans
            </NavLink>
          ) : null}
          {can(user, 'view') ? (
            <NavLink to="/runs" className={navClass}>
              History
            </NavLink>
          ) : null}
          {can(user, 'notifications') ? (
            <NavLink to="/notifications" className={navClass}>
              Notifications
            </NavLink>
          ) : null}
          {can(user, 'manage-accounts') ? (
            <NavLink to="/admin/accounts" className={navClass}>
              Accounts
            </NavLink>
          ) : null}
          <NavLink to="/account/tokens" className={navClass}>
            API tokens
          </NavLink>
        </nav>
        <div className="ml-auto flex items-center gap-3 text-sm">
          <span className="text-right leading-tight">
            <span className="block font-medium text-white">{user.name || user.email}</span>
            {user.name ? <span className="hidden text-xs text-slate-400 sm:block">{user.email}</span> : null}
          </span>
          <span
            className={`rounded px-1.5 py-0.5 text-xs font-semibold uppercase tracking-wide ring-1 ring-inset ${ROLE_BADGE[user.role]}`}
            title="Your role decides what you may do"
          >
            <span className="sr-only">Role: </span>
            {ROLE_LABELS[user.role]}
          </span>
          {user.via === 'session' ? (
            <Form method="post" action="/logout">
              <button
                type="submit"
                name="intent"
                value="logout"
                className="rounded border border-slate-500 px-2 py-1 text-xs text-slate-100 hover:bg-slate-700"
              >
                Sign out
              </button>
            </Form>
          ) : (
            <span className="text-xs text-slate-400">Signed in by single sign-on</span>
          )}
        </div>
      </div>
    </header>
  );
}
