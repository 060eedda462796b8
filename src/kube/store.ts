/**
 * The apiserver as the manager's store: ImageSyncs through their API (status subresource),
 * Events through the aggregating recorder, Secrets read fresh by name for every sync.
 * @module
 */

import type { Logger } from "../log/mod.ts";
import type { KubeClient } from "./client.ts";
import { EventRecorder } from "./events.ts";
import { ImageSyncClient } from "./imagesyncs.ts";
import { getSecret, type Secret } from "./secrets.ts";

/** The component Events are reported by: upstream's controller name, so its users' filters work. */
export const EVENT_COMPONENT = "imagesync-controller";

/** Options of {@linkcode KubeStore}. */
export interface KubeStoreOptions {
  /** This instance's identity, recorded as the Events' reporting instance. */
  identity: string;
  /** Where Event write failures are logged. */
  logger?: Logger;
}

/** ImageSyncs, Events and Secrets of one cluster. */
export class KubeStore {
  /** ImageSync reads, annotation removal, status writes. */
  readonly imagesyncs: ImageSyncClient;
  /** Events, aggregated. */
  readonly recorder: EventRecorder;
  readonly #kube: KubeClient;

  /** Creates the store over `kube`. */
  constructor(kube: KubeClient, options: KubeStoreOptions) {
    this.#kube = kube;
    this.imagesyncs = new ImageSyncClient(kube);
    this.recorder = new EventRecorder(kube, {
      component: EVENT_COMPONENT,
      instance: options.identity,
      logger: options.logger,
    });
  }

  /** The Secret `namespace/name`, undefined when it does not exist; a refusal throws. */
  loadSecret = (ref: { namespace: string; name: string }): Promise<Secret | undefined> =>
    getSecret(this.#kube, ref);

  /** Flushes pending Events. */
  close(): Promise<void> {
    return this.recorder.close();
  }
}
