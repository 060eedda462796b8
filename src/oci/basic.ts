/**
 * Basic auth (RFC 7617): the `Authorization` header for a username/password credential, sent
 * only when the registry's own `/v2/` challenge asked for Basic.
 * @module
 */

import type { Credential } from "./auth.ts";

/** Encodes username:password for a Basic Authorization header (UTF-8). */
export function basicAuth(username: string, password: string): string {
  const bytes = new TextEncoder().encode(`${username}:${password}`);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return `Basic ${btoa(bin)}`;
}

/** The Basic header for a credential, or undefined when it is not a username/password pair. */
export function basicAuthorization(credential: Credential | undefined): string | undefined {
  return credential && "username" in credential
    ? basicAuth(credential.username, credential.password)
    : undefined;
}
