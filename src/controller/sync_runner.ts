/**
 * Binds an ImageSync to the shared "sync one spec once" use case: its Secrets are read fresh
 * from the cluster for every sync (never cached, so a rotated password is used at once) and
 * turned into credential resolvers by src/credentials; the runner then calls src/sync.
 * @module
 */

import type { ImageSyncSpec } from "../api/mod.ts";
import { CredentialError, credentialsForSpec, type SecretRef } from "../credentials/mod.ts";
import { getSecret, type KubeClient } from "../kube/mod.ts";
import type { Logger } from "../server/log.ts";
import { syncImageSync } from "../sync/mod.ts";
import type { StoredImageSync, SyncRunner } from "./reconcile.ts";

/** Options of {@linkcode makePrepareSync}. */
export interface PrepareSyncOptions {
  /** Registry hosts allowed over plain HTTP. */
  insecureRegistries?: string[];
  /** Extra PEM CA certificates trusted for registries. */
  caCerts?: string[];
  /** Blob transfers in flight per sync. */
  concurrency?: number;
  /** Logger. */
  logger?: Logger;
}

/** Reads a Secret for credentials; a refusal by the apiserver is AuthFailed naming the Secret. */
export function secretLoader(kube: KubeClient): (ref: SecretRef) => Promise<
  { type?: string; data?: Record<string, string> } | undefined
> {
  return async (ref) => {
    try {
      return await getSecret(kube, ref);
    } catch (err) {
      throw new CredentialError(
        "AuthFailed",
        `cannot read secret ${ref.namespace}/${ref.name}: ${(err as Error).message}`,
        {
          source: `secret ${ref.namespace}/${ref.name}`,
          cause: err,
        },
      );
    }
  };
}

/** Returns the reconciler's `prepareSync`: credentials for the spec, then a runner. */
export function makePrepareSync(
  kube: KubeClient,
  options: PrepareSyncOptions = {},
): (obj: StoredImageSync, spec: ImageSyncSpec, signal: AbortSignal) => Promise<SyncRunner> {
  const loadSecret = secretLoader(kube);
  return async (obj, spec) => {
    const creds = await credentialsForSpec(spec, { namespace: obj.metadata.namespace, loadSecret });
    return (s, run) =>
      syncImageSync(s, {
        sourceCredentials: creds.source,
        destinationCredentials: creds.destination,
        repositories: creds.repositories,
        insecureRegistries: options.insecureRegistries,
        caCerts: options.caCerts,
        concurrency: options.concurrency,
        userAgent: "portager-operator",
        previous: run.previous,
        onEvent: run.onEvent,
        onRetry: () => run.onRetry(),
        signal: run.signal,
        cancelInFlight: run.cancelInFlight,
      });
  };
}
