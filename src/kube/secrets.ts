/**
 * Reading Secrets (for registry credentials). Portager only ever GETs a named Secret; it never
 * lists or watches them, so RBAC can grant `get` alone.
 * @module
 */

import { isKubeReason, type KubeClient } from "./client.ts";

/** The fields of a core/v1 Secret that Portager reads. `data` values are base64. */
export interface Secret {
  /** Name and namespace. */
  metadata: { name: string; namespace: string; resourceVersion?: string };
  /** Secret type, e.g. kubernetes.io/dockerconfigjson. */
  type?: string;
  /** Values by key, base64-encoded. */
  data?: Record<string, string>;
}

/** The Secret `namespace/name`, or undefined if it does not exist. */
export async function getSecret(
  kube: KubeClient,
  ref: { namespace: string; name: string },
  options: { signal?: AbortSignal } = {},
): Promise<Secret | undefined> {
  try {
    return await kube.request<Secret>(
      "GET",
      `/api/v1/namespaces/${encodeURIComponent(ref.namespace)}/secrets/${encodeURIComponent(ref.name)}`,
      options,
    );
  } catch (err) {
    if (isKubeReason(err, "NotFound")) return undefined;
    throw err;
  }
}
