/**
 * Delegated authentication and authorization, as controller-runtime's metrics filter does it:
 * a TokenReview asks the apiserver who a bearer token belongs to, a SubjectAccessReview
 * whether that user may `get` a non-resource URL such as `/metrics` (RBAC's
 * `nonResourceURLs`). The operator needs `create` on both kinds (upstream's
 * `metrics-auth-role`).
 * @module
 */

import type { KubeClient } from "./client.ts";

/** The user a token belongs to, as the TokenReview answers. */
export interface ReviewedUser {
  /** e.g. `system:serviceaccount:monitoring:prometheus`. */
  username: string;
  /** The user's UID, when known. */
  uid?: string;
  /** Groups, e.g. `system:serviceaccounts`. */
  groups?: string[];
  /** Extra attributes (service account pod name, …). */
  extra?: Record<string, string[]>;
}

/** Asks the apiserver about tokens and permissions. */
export class AccessReviewer {
  readonly #kube: Pick<KubeClient, "request">;

  /** Creates a reviewer over `kube` (its `request` alone). */
  constructor(kube: Pick<KubeClient, "request">) {
    this.#kube = kube;
  }

  /** The user of `token`, or undefined when the apiserver does not authenticate it. */
  async authenticate(
    token: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<ReviewedUser | undefined> {
    const res = await this.#kube.request<{ status?: { authenticated?: boolean; user?: ReviewedUser } }>(
      "POST",
      "/apis/authentication.k8s.io/v1/tokenreviews",
      {
        body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token } },
        signal: options.signal,
      },
    );
    const user = res.status?.user;
    return res.status?.authenticated && user?.username ? user : undefined;
  }

  /** Whether `user` may `verb` the non-resource URL `path`. */
  async authorize(
    user: ReviewedUser,
    access: { path: string; verb: string },
    options: { signal?: AbortSignal } = {},
  ): Promise<boolean> {
    const res = await this.#kube.request<{ status?: { allowed?: boolean } }>(
      "POST",
      "/apis/authorization.k8s.io/v1/subjectaccessreviews",
      {
        body: {
          apiVersion: "authorization.k8s.io/v1",
          kind: "SubjectAccessReview",
          spec: {
            user: user.username,
            uid: user.uid,
            groups: user.groups,
            extra: user.extra,
            nonResourceAttributes: { path: access.path, verb: access.verb },
          },
        },
        signal: options.signal,
      },
    );
    return res.status?.allowed === true;
  }
}
