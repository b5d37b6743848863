/** The password rules, shared by the server (password.server.ts) and the forms that set one. */
export const MIN_PASSWORD_LENGTH = 12;
export const MAX_PASSWORD_LENGTH = 1024;
