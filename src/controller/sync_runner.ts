/**
 * Binds an ImageSync to the shared "sync one spec once" use case: its Secrets are read fresh
 * through the store's loader for every sync (never cached, so a rotated password is used at
 * once) and turned into credential resolvers by src/credentials; the runner then calls
 * src/sync. Both stores (apiserver, files) go through here.
 *
 * The registry clients are shared between syncs of the same registry with the same resolved
 * credential for a minute (src/sync's `RegistryClientCache`): one `/v2/` ping and one token
 * per scope serve many ImageSyncs, where each sync used to build its own two clients.
 * @module
 */

import type { ImageSyncSpec } from "../api/mod.ts";
import { type AllowedRegistries, credentialsForSpec, type SecretLoader } from "../credentials/mod.ts";
import { type CredentialResolver, DEFAULT_MAX_TRANSFERS, Limiter } from "../oci/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { Metrics } from "../metrics/mod.ts";
import { RegistryClientCache, syncImageSync, type SyncLimits } from "../sync/mod.ts";
import type { StoredImageSync, SyncRunner } from "./reconcile.ts";

/** How the syncs of a manager run. */
export interface SyncSettings {
  /** Registry hosts allowed over plain HTTP. */
  insecureRegistries?: string[];
  /** Extra PEM CA certificates trusted for registries. */
  caCerts?: string[];
  /** Blob transfers in flight per sync; default the sync engine's. */
  concurrency?: number;
  /**
   * Blob and manifest transfers in flight at once over all the syncs of this manager (the
   * process's budget, on top of `concurrency` per sync); default `DEFAULT_MAX_TRANSFERS` (8).
   */
  maxTransfers?: number;
  /** User-Agent of registry requests; default "portager-operator". */
  userAgent?: string;
  /** Whether a secretRef may name another namespace than the ImageSync's; default false. */
  allowCrossNamespaceRefs?: boolean;
  /** Namespaces allowed the process's cloud identity (ecr, gar); default every namespace. */
  cloudIdentityNamespaces?: string[];
  /** The registries a spec may name; default every registry. */
  allowedRegistries?: AllowedRegistries;
  /** What one sync may cost (deadline, request deadlines, transfer rate, manifest and tag caps). */
  limits?: SyncLimits;
  /** A Sigstore `trusted_root.json` for keyless cosign checks; default the public-good root. */
  trustedRootPath?: string;
  /** Logger. */
  logger?: Logger;
  /**
   * Metrics to expose the transfer budget on (`portager_transfers_in_flight`, `_waiting`,
   * `_max`, read at each scrape); none by default.
   */
  metrics?: Metrics;
}

/** Where a store's Secrets come from. */
export interface SecretSource {
  /** Reads a Secret (or its stand-in). */
  loadSecret: SecretLoader;
  /** Credentials where no Secret is named, or one the loader does not have (file mode). */
  fallback?: CredentialResolver;
}

/** Returns the reconciler's `prepareSync`: credentials for the spec, then a runner. */
export function makePrepareSync(
  secrets: SecretSource,
  settings: SyncSettings = {},
): (obj: StoredImageSync, spec: ImageSyncSpec, signal: AbortSignal) => Promise<SyncRunner> {
  const clientCache = new RegistryClientCache();
  // one budget for every sync this manager runs: raising the workers raises the checks in
  // flight, not the transfers (and the memory their buffers take)
  const transferBudget = new Limiter(settings.maxTransfers ?? DEFAULT_MAX_TRANSFERS);
  settings.metrics?.watchTransfers(transferBudget);
  return async (obj, spec) => {
    const creds = await credentialsForSpec(spec, {
      namespace: obj.metadata.namespace,
      loadSecret: secrets.loadSecret,
      fallback: secrets.fallback,
      allowCrossNamespaceRefs: settings.allowCrossNamespaceRefs ?? false,
      cloudIdentityNamespaces: settings.cloudIdentityNamespaces,
      allowedRegistries: settings.allowedRegistries,
    });
    return (s, run) =>
      syncImageSync(s, {
        sourceCredentials: creds.source,
        destinationCredentials: creds.destination,
        repositories: creds.repositories,
        insecureRegistries: settings.insecureRegistries,
        caCerts: settings.caCerts,
        concurrency: settings.concurrency,
        transferBudget,
        limits: settings.limits,
        trustedRootPath: settings.trustedRootPath,
        userAgent: settings.userAgent ?? "portager-operator",
        clientCache,
        previous: run.previous,
        tagsRecorded: true,
        onEvent: run.onEvent,
        onRetry: () => run.onRetry(),
        signal: run.signal,
        cancelInFlight: run.cancelInFlight,
      });
  };
}
