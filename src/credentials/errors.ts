/**
 * Errors of the credentials layer. Messages name the secret (or credential source) and the
 * registry so a user can act, and never contain any part of a secret's content.
 * @module
 */

/**
 * The stable reasons a {@linkcode CredentialError} can carry: AuthFailed; CrossNamespaceRefDenied
 * (a secretRef into another namespace, refused by the operator's tenancy rule);
 * CloudIdentityDenied (ecr/gar from a namespace not allowed the operator's cloud identity);
 * RegistryNotAllowed (a registry outside the operator's `--allowed-registries`).
 */
export type CredentialErrorReason =
  | "AuthFailed"
  | "CrossNamespaceRefDenied"
  | "CloudIdentityDenied"
  | "RegistryNotAllowed";

/** Options for {@linkcode CredentialError}. */
export interface CredentialErrorOptions {
  /** Registry host the credential was for. */
  registry?: string;
  /** Where credentials came from, e.g. `secret default/creds` or `AWS credential chain`. */
  source?: string;
  /** Underlying error (its message may be shown; it must not carry secrets either). */
  cause?: unknown;
}

/** Credentials could not be obtained, used or were refused; `reason` is the condition reason. */
export class CredentialError extends Error {
  /** Stable reason for conditions and Events. */
  readonly reason: CredentialErrorReason;
  /** Registry host the credential was for. */
  readonly registry?: string;
  /** Where the credentials came from. */
  readonly source?: string;

  /** Creates the error with a message a user can act on. */
  constructor(reason: CredentialErrorReason, message: string, opts: CredentialErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "CredentialError";
    this.reason = reason;
    this.registry = opts.registry;
    this.source = opts.source;
  }
}
