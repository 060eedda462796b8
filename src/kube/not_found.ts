/**
 * Reads of objects that may not exist: the apiserver's NotFound is an answer (undefined),
 * every other error stays an error.
 * @module
 */

import { isKubeReason } from "./client.ts";

/**
 * The value of `request`, or undefined when the apiserver answered NotFound:
 * `await unlessNotFound(kube.request<Lease>("GET", path))`.
 */
export async function unlessNotFound<T>(request: Promise<T>): Promise<T | undefined> {
  try {
    return await request;
  } catch (err) {
    if (isKubeReason(err, "NotFound")) return undefined;
    throw err;
  }
}
