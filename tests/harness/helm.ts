/**
 * Helm for tests: runs the helm binary that scripts/build-tools.sh builds from its Go module
 * (cached per version) to lint and render charts, and parses what it renders.
 *
 * ```ts
 * const objects = await helmTemplate("charts/portager", { values: { metrics: { enabled: false } } });
 * ```
 * @module
 */

import yaml from "js-yaml";
import { toolPath } from "./tools.ts";

/** A Kubernetes object as rendered by a chart. */
export interface RenderedObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    // deno-lint-ignore no-explicit-any
    [field: string]: any;
  };
  // deno-lint-ignore no-explicit-any
  [field: string]: any;
}

/** helm exited non-zero; `reason` is always "HelmFailed", `output` is its stderr+stdout. */
export class HelmError extends Error {
  /** Stable machine-readable reason. */
  readonly reason = "HelmFailed";
  /** Creates the error for the helm `args` that failed with `output`. */
  constructor(readonly args: string[], readonly output: string) {
    super(`helm ${args.join(" ")} failed:\n${output.trim()}`);
    this.name = "HelmError";
  }
}

/** Options shared by helmTemplate and helmLint. */
export interface HelmValuesOptions {
  /** Value documents, applied in order like repeated `-f` files. */
  values?: unknown[];
  /** `--set` expressions, applied after the value documents. */
  set?: string[];
}

/** Options for helmTemplate. */
export interface HelmTemplateOptions extends HelmValuesOptions {
  /** Release name (default "portager"). */
  releaseName?: string;
  /** Release namespace (default "portager-system"). */
  namespace?: string;
  /**
   * Kubernetes version the chart is rendered for (default "1.34.4"). Helm built from its module
   * lacks the release ldflags and would otherwise assume v1.20.
   */
  kubeVersion?: string;
  /** Also render crds/ (`--include-crds`). */
  includeCrds?: boolean;
}

/** Runs helm with `args`; resolves to stdout, throws HelmError with the output on failure. */
export async function runHelm(args: string[], opts: { cwd?: string } = {}): Promise<string> {
  const out = await new Deno.Command(toolPath("helm"), {
    args,
    cwd: opts.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    // helm keeps caches and config under these; keep them out of the user's home.
    env: {
      HELM_CACHE_HOME: `${Deno.env.get("TMPDIR") ?? "/tmp"}/portager-helm-cache`,
      HELM_CONFIG_HOME: `${Deno.env.get("TMPDIR") ?? "/tmp"}/portager-helm-config`,
      HELM_DATA_HOME: `${Deno.env.get("TMPDIR") ?? "/tmp"}/portager-helm-data`,
    },
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new HelmError(args, new TextDecoder().decode(out.stderr) + stdout);
  }
  return stdout;
}

/** Writes the value documents to a temp dir and returns the `-f`/`--set` args and a cleanup. */
async function valueArgs(opts: HelmValuesOptions): Promise<{ args: string[]; cleanup: () => Promise<void> }> {
  const args: string[] = [];
  let dir: string | undefined;
  if (opts.values?.length) {
    dir = await Deno.makeTempDir({ prefix: "portager-helm-values-" });
    for (const [i, doc] of opts.values.entries()) {
      const file = `${dir}/values-${i}.yaml`;
      // JSON is YAML; it keeps numbers, booleans and nulls exactly as given.
      await Deno.writeTextFile(file, JSON.stringify(doc));
      args.push("-f", file);
    }
  }
  for (const s of opts.set ?? []) args.push("--set", s);
  return {
    args,
    cleanup: async () => {
      if (dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Splits a multi-document YAML stream into its non-empty objects. */
export function parseManifests(text: string): RenderedObject[] {
  return (yaml.loadAll(text) as unknown[]).filter((d): d is RenderedObject =>
    d !== null && typeof d === "object" && "kind" in d
  );
}

/** `helm template` for `chart` with the given values; returns the parsed objects. */
export async function helmTemplate(
  chart: string,
  opts: HelmTemplateOptions = {},
): Promise<RenderedObject[]> {
  const { args, cleanup } = await valueArgs(opts);
  try {
    const text = await runHelm([
      "template",
      opts.releaseName ?? "portager",
      chart,
      "--namespace",
      opts.namespace ?? "portager-system",
      "--kube-version",
      opts.kubeVersion ?? "1.34.4",
      ...(opts.includeCrds ? ["--include-crds"] : []),
      ...args,
    ]);
    return parseManifests(text);
  } finally {
    await cleanup();
  }
}

/** `helm lint --strict` for `chart` with the given values; returns helm's output. */
export async function helmLint(chart: string, opts: HelmValuesOptions = {}): Promise<string> {
  const { args, cleanup } = await valueArgs(opts);
  try {
    return await runHelm(["lint", "--strict", chart, ...args]);
  } finally {
    await cleanup();
  }
}
