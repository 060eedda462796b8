/**
 * File mode's store: ImageSyncs from a folder of YAML/JSON files, their status in a state file,
 * Events as log lines, Secrets stood in by files. It plugs into the manager (src/controller)
 * as the apiserver store does, so `portager serve` decides and retries exactly as the operator.
 *
 * ```ts
 * const store = new FileStore({ files: ["./imagesyncs"], load, statePath, state, loadSecret, logger });
 * await new Manager({ store, source: store, logger }).run(signal);
 * ```
 * @module
 */
export { type FileImageSync, type FileLoad, FileStore, type FileStoreOptions } from "./store.ts";
export {
  defaultStatePath,
  emptyState,
  readState,
  type ServeState,
  specHash,
  stableHash,
  STATE_VERSION,
  type StateEntry,
  StateFileError,
  writeState,
} from "./state.ts";
