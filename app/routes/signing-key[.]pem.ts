import type { LoaderFunctionArgs } from '@remix-run/node';
import { publishedSigningKeysPem } from '../runs/signing.server';

// Public (PRODUCT.md): auditors verify exported logs with these keys and need no account.
// The current key first, then every earlier one that signed, so old logs keep verifying.
// The same for everyone, so caches may keep it ("public"; every other answer of the app is no-store).
export async function loader({ context }: LoaderFunctionArgs) {
  const { store, signingKeyPem } = context.runtime;
  const pem = await publishedSigningKeysPem(store.pool, signingKeyPem);
  return new Response(pem, {
    headers: { 'content-type': 'application/x-pem-file', 'cache-control': 'public, no-cache' },
  });
}
