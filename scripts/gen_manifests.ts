/**
 * Regenerates the committed copies of the ImageSync CRD (deploy/crd.yaml and the Helm chart's
 * crds/imagesyncs.yaml) from the schema in src/api, the single source of truth.
 *
 *   deno run --allow-read --allow-write scripts/gen_manifests.ts          # write both
 *   deno run --allow-read scripts/gen_manifests.ts --check                # exit 1 on drift
 *
 * Same output and paths as `portager crd --write` (src/cli/crd.ts owns the path list).
 * @module
 */

import { crdYaml } from "../src/api/mod.ts";
import { CRD_PATHS } from "../src/cli/crd.ts";

const ROOT = new URL("../", import.meta.url);

/** The repository-relative paths that hold the generated CRD. */
export const GENERATED_CRD_PATHS: readonly string[] = CRD_PATHS;

/** Returns the generated paths whose committed content differs from the schema's CRD. */
export async function driftedManifests(root: URL = ROOT): Promise<string[]> {
  const want = crdYaml();
  const drifted: string[] = [];
  for (const path of GENERATED_CRD_PATHS) {
    let have: string | undefined;
    try {
      have = await Deno.readTextFile(new URL(path, root));
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    if (have !== want) drifted.push(path);
  }
  return drifted;
}

/** Writes the schema's CRD to every generated path under `root`; returns the paths written. */
export async function writeManifests(root: URL = ROOT): Promise<string[]> {
  const yaml = crdYaml();
  for (const path of GENERATED_CRD_PATHS) {
    const url = new URL(path, root);
    await Deno.mkdir(new URL(".", url), { recursive: true });
    await Deno.writeTextFile(url, yaml);
  }
  return [...GENERATED_CRD_PATHS];
}

if (import.meta.main) {
  if (Deno.args.includes("--check")) {
    const drifted = await driftedManifests();
    if (drifted.length) {
      console.error(
        `out of date: ${drifted.join(", ")}\n` +
          "regenerate with: deno run --allow-read --allow-write scripts/gen_manifests.ts",
      );
      Deno.exit(1);
    }
    console.error(`up to date: ${GENERATED_CRD_PATHS.join(", ")}`);
  } else {
    for (const path of await writeManifests()) console.error(`wrote ${path}`);
  }
}
