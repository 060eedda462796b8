/**
 * Paths of the Go test tools that scripts/build-tools.sh builds once per version and caches
 * under `${PORTAGER_TEST_CACHE:-$HOME/.cache/portager-test}/<tool>-<version>/bin/`.
 *
 * The versions are read from scripts/build-tools.sh itself (and honour the same environment
 * overrides), so the script stays the single place that names them.
 * @module
 */

import { createHash } from "node:crypto";

/** A Go test tool built by scripts/build-tools.sh. */
export type ToolName =
  | "etcd"
  | "kube-apiserver"
  | "toxiproxy-server"
  | "helm"
  | "crane"
  | "cosign"
  | "oras"
  | "referrers-registry"
  | "leader-peer";

/** Thrown when a tool binary is not built yet; `reason` is always "ToolMissing". */
export class ToolMissingError extends Error {
  /** Stable machine-readable reason. */
  readonly reason = "ToolMissing";
  /** Creates the error for `tool`, expected at `path`. */
  constructor(readonly tool: ToolName, readonly path: string) {
    super(
      `${tool} is not built: ${path} is missing (or its build did not finish). ` +
        `Run scripts/build-tools.sh (it builds each Go tool once and caches it).`,
    );
    this.name = "ToolMissingError";
  }
}

const BUILD_SCRIPT = new URL("../../scripts/build-tools.sh", import.meta.url);

/**
 * build-tools.sh tool name, version variable, and the binary inside its bin/ folder; `source`
 * names tests/harness/go/<source>/main.go for the tools built from our own small mains (their
 * version also carries a hash of that file, as in build-tools.sh).
 */
const TOOLS: Record<ToolName, { dir: string; versionVar: string; binary: string; source?: string }> = {
  "etcd": { dir: "etcd", versionVar: "ETCD_VERSION", binary: "etcd" },
  "kube-apiserver": {
    dir: "kube-apiserver",
    versionVar: "KUBE_VERSION",
    binary: "kube-apiserver",
  },
  "toxiproxy-server": {
    dir: "toxiproxy",
    versionVar: "TOXIPROXY_VERSION",
    binary: "toxiproxy-server",
  },
  "helm": { dir: "helm", versionVar: "HELM_VERSION", binary: "helm" },
  "crane": { dir: "crane", versionVar: "CRANE_VERSION", binary: "crane" },
  "cosign": { dir: "cosign", versionVar: "COSIGN_VERSION", binary: "cosign" },
  "oras": { dir: "oras", versionVar: "ORAS_VERSION", binary: "oras" },
  "referrers-registry": {
    dir: "referrers-registry",
    versionVar: "CRANE_VERSION",
    binary: "referrers-registry",
    source: "referrers_registry",
  },
  "leader-peer": {
    dir: "leader-peer",
    versionVar: "KUBE_VERSION",
    binary: "leader-peer",
    source: "leader_peer",
  },
};

/** The first 12 hex digits of the sha256 of tests/harness/go/<source>/main.go. */
function sourceHash(source: string): string {
  const main = Deno.readFileSync(new URL(`./go/${source}/main.go`, import.meta.url));
  return createHash("sha256").update(main).digest("hex").slice(0, 12);
}

let scriptText: string | undefined;

/**
 * The version build-tools.sh builds for a tool (env override first, then the script default);
 * for a tool built from tests/harness/go/<source>/main.go, followed by `-<hash of main.go>`.
 */
export function toolVersion(name: ToolName): string {
  const { versionVar, source } = TOOLS[name];
  const suffix = source ? `-${sourceHash(source)}` : "";
  const fromEnv = Deno.env.get(versionVar);
  if (fromEnv) return fromEnv + suffix;
  scriptText ??= Deno.readTextFileSync(BUILD_SCRIPT);
  // e.g. KUBE_VERSION="${KUBE_VERSION:-v1.34.4}"
  const m = scriptText.match(new RegExp(`${versionVar}="\\$\\{${versionVar}:-([^}"]+)\\}"`));
  if (!m) throw new Error(`cannot find the default ${versionVar} in ${BUILD_SCRIPT.pathname}`);
  return m[1] + suffix;
}

/** The cache root: PORTAGER_TEST_CACHE, else $HOME/.cache/portager-test. */
export function toolCacheDir(): string {
  return Deno.env.get("PORTAGER_TEST_CACHE") ??
    `${Deno.env.get("HOME") ?? "/root"}/.cache/portager-test`;
}

/** Absolute path of a built tool; throws ToolMissingError if it is not (completely) built. */
export function toolPath(name: ToolName): string {
  const { dir, binary } = TOOLS[name];
  const bin = `${toolCacheDir()}/${dir}-${toolVersion(name)}/bin`;
  const path = `${bin}/${binary}`;
  for (const p of [path, `${bin}/.done`]) {
    try {
      Deno.statSync(p);
    } catch {
      throw new ToolMissingError(name, path);
    }
  }
  return path;
}
