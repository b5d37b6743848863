import type { Runtime } from './boot/runtime.server';

declare module '@remix-run/node' {
  interface AppLoadContext {
    runtime: Runtime;
    cspNonce: string;
    /** The peer address of the request (for throttling and the trusted-proxy check). */
    clientAddress: string;
  }
}

export {};
