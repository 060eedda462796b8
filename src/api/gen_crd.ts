/**
 * Writes deploy/crd.yaml from the schema. Run after changing src/api/schema.ts:
 *
 * ```sh
 * deno run --allow-write=deploy src/api/gen_crd.ts
 * ```
 *
 * (`deno task crd`, i.e. `portager crd --write`, does the same and also updates the chart's copy.)
 * @module
 */
import { crdYaml } from "./crd.ts";

/** Where the generated CRD is committed, relative to the repository root. */
export const CRD_FILE = new URL("../../deploy/crd.yaml", import.meta.url);

if (import.meta.main) {
  await Deno.mkdir(new URL(".", CRD_FILE), { recursive: true });
  await Deno.writeTextFile(CRD_FILE, crdYaml());
  console.error(`wrote ${CRD_FILE.pathname}`);
}
