/**
 * The shape of an API token (docs/decisions/028): `rs_<id>_<secret>`, the id 8 random bytes in hex
 * (public: events and lists name a token by it), the secret 32 random bytes in base64url (shown
 * once, stored only as its sha256). Pure, so the command line and the pages can tell a token from
 * a typo without the store.
 */

export const TOKEN_PREFIX = 'rs_';
export const TOKEN_ID_PATTERN = /^[0-9a-f]{16}$/;
const TOKEN_PATTERN = /^rs_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

/** A token's life: 90 days unless its creator asks otherwise, one year at most. */
export const DEFAULT_TOKEN_DAYS = 90;
export const MAX_TOKEN_DAYS = 365;

export interface ParsedToken {
  id: string;
  secret: string;
}

/** The id and secret of a token, or undefined when the text is not shaped like one. */
export function parseApiToken(text: string): ParsedToken | undefined {
  const match = TOKEN_PATTERN.exec(text.trim());
  return match ? { id: match[1]!, secret: match[2]! } : undefined;
}

export function formatApiToken(token: ParsedToken): string {
  return `${TOKEN_PREFIX}${token.id}_${token.secret}`;
}

/** The domain that marks a service account's identifier (`ci-deploy@service.invalid`): reserved, no mail reaches it. */
export const SERVICE_ACCOUNT_DOMAIN = 'service.invalid';
export const SERVICE_ACCOUNT_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{1,62}$/;

export const serviceAccountEmail = (name: string): string => `${name}@${SERVICE_ACCOUNT_DOMAIN}`;
export const isServiceAccountEmail = (email: string): boolean => email.toLowerCase().endsWith(`@${SERVICE_ACCOUNT_DOMAIN}`);
