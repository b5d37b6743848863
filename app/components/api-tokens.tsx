import { Form } from '@remix-run/react';
import type { TokenRow } from '../web/tokens-page.server';
import { CopyButton } from './copy-button';

const smallButton = 'rounded border border-slate-300 bg-white px-2 py-0.5 text-xs hover:bg-slate-100 disabled:opacity-50';
const when = (iso: string | null) => (iso ? `${iso.replace('T', ' ').slice(0, 16)} UTC` : '—');

/** A just-created token, shown once: it is never stored nor shown again. */
export function NewTokenSecret({ secret }: { secret: { tokenId: string; token: string; account: string } }) {
  return (
    <div className="mt-1">
      <p>
        The token for {secret.account} (shown once: copy it now, e.g. into your CI secrets as <code>RUNSHEET_TOKEN</code>):
      </p>
      <div className="mt-1 flex items-center gap-2">
        <code aria-label="New API token" className="break-all rounded bg-white px-1 font-mono text-xs ring-1 ring-emerald-200">
          {secret.token}
        </code>
        <CopyButton text={secret.token} label="Copy the token" />
      </div>
    </div>
  );
}

/** Tokens' metadata (never a secret), each revocable while it is active. */
export function TokensTable({ tokens, showAccount, busy, caption }: { tokens: TokenRow[]; showAccount: boolean; busy: boolean; caption: string }) {
  if (tokens.length === 0) return <p className="px-4 py-3 text-sm text-ink-muted">No API tokens yet.</p>;
  return (
    <table className="mt-2 w-full text-left text-xs">
      <caption className="sr-only">{caption}</caption>
      <thead className="border-y border-slate-200 bg-slate-50 uppercase tracking-wide text-ink-muted">
        <tr>
          <th scope="col" className="px-4 py-1.5">Name</th>
          <th scope="col" className="px-2 py-1.5">Id</th>
          {showAccount ? <th scope="col" className="px-2 py-1.5">Account</th> : null}
          <th scope="col" className="px-2 py-1.5">Status</th>
          <th scope="col" className="px-2 py-1.5">Created</th>
          <th scope="col" className="px-2 py-1.5">Expires</th>
          <th scope="col" className="px-2 py-1.5">Last used</th>
          <th scope="col" className="px-2 py-1.5"><span className="sr-only">Actions</span></th>
        </tr>
      </thead>
      <tbody className="divide-y divide-slate-100">
        {tokens.map((token) => (
          <tr key={token.id} className={token.status === 'active' ? undefined : 'text-ink-faint'}>
            <th scope="row" className="px-4 py-1.5 text-left font-medium">{token.name}</th>
            <td className="px-2 py-1.5 font-mono">{token.id}</td>
            {showAccount ? (
              <td className="px-2 py-1.5 font-mono">
                {token.accountEmail}
                {token.accountKind === 'service' ? <span className="ml-1 text-ink-muted">(service)</span> : null}
              </td>
            ) : null}
            <td className="px-2 py-1.5">
              {token.status === 'revoked' ? `revoked ${when(token.revokedAt)} by ${token.revokedBy ?? '—'}` : token.status}
            </td>
            <td className="px-2 py-1.5">
              {when(token.createdAt)} by {token.createdBy}
            </td>
            <td className="px-2 py-1.5">{when(token.expiresAt)}</td>
            <td className="px-2 py-1.5">
              {token.lastUsedAt ? `${when(token.lastUsedAt)} from ${token.lastUsedIp ?? '?'}` : 'never'}
            </td>
            <td className="px-2 py-1.5">
              {token.status === 'active' ? (
                <Form method="post">
                  <input type="hidden" name="tokenId" value={token.id} />
                  <button type="submit" name="intent" value="revoke-token" disabled={busy} className={smallButton}>
                    Revoke<span className="sr-only"> token {token.name}</span>
                  </button>
                </Form>
              ) : null}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
