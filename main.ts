/**
 * Portager: declaratively sync container images between OCI registries.
 * This file only wires the command line to `src/cli`.
 * @module
 */
import { main } from "./src/cli/mod.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
