/**
 * Everything that talks to the Kubernetes API: cluster configuration, the REST client, the
 * list+watch informer, ImageSyncs, Secrets, Events and Leases. The rest of Portager reaches
 * the cluster only through this module.
 * @module
 */

export * from "./config.ts";
export * from "./client.ts";
export * from "./informer.ts";
export * from "./imagesyncs.ts";
export * from "./secrets.ts";
export * from "./events.ts";
export * from "./lease.ts";
export * from "./store.ts";
export * from "./reviews.ts";
