import type { LoaderFunctionArgs } from '@remix-run/node';
import { publishedSigningKeysPem } from '../runs/signing.server';

// Public (PRODUCT.md): auditors verify exported logs with these keys and need no account.
// The current key first, then every earlier one that signed, so old logs keep verifying.
export async function loader({ context }: LoaderFunctionArgs) {
  const { store, signingKeyPem } = context.runtime;
  const pem = await publishedSigningKeysPem(store.pool, signingKeyPem);
  return new Response(pem, {
    headers: { 'content-type': 'application/x-pem-file', 'cache-control': 'no-cache' },
  });
}
