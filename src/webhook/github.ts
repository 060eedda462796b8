/**
 * GitHub `package` (and older `registry_package`) events for container packages on ghcr.io,
 * signed with the webhook secret (`X-Hub-Signature-256`, checked by the endpoint); the
 * delivery id is `X-GitHub-Delivery`. `published` and `updated` of a container version count;
 * `ping` and other packages are accepted and ignored.
 * @module
 */

import { malformed, obj, type ParseContext, type PushEvent, splitImageUrl, str } from "./event.ts";

/** GitHub's container registry host. */
export const GHCR = "ghcr.io";

/** Reads a GitHub package event into its push (none for pings and other packages). */
export function parseGitHub(body: unknown, ctx: ParseContext): PushEvent[] {
  const event = ctx.headers.get("x-github-event") ?? "";
  if (event === "ping") return [];
  if (event !== "package" && event !== "registry_package") {
    throw malformed("github", `event "${event}" is not a package event; subscribe the webhook to "Packages"`);
  }
  const action = str(body, "action");
  const pkg = obj(body, event === "package" ? "package" : "registry_package") ?? obj(body, "package");
  if (!action || !pkg) throw malformed("github", "action or package is missing");
  if (action !== "published" && action !== "updated") return [];
  const type = (str(pkg, "package_type") ?? "").toLowerCase();
  if (type !== "container" && type !== "docker") return [];
  const name = str(pkg, "name");
  const owner = str(obj(pkg, "owner"), "login") ?? str(pkg, "namespace");
  const version = obj(pkg, "package_version");
  if (!name || !owner || !version) {
    throw malformed("github", "package.name, package.owner.login or package_version is missing");
  }
  const tagInfo = obj(obj(version, "container_metadata"), "tag");
  const url = splitImageUrl(str(version, "package_url") ?? "");
  const tag = str(tagInfo, "name") ?? url?.tag;
  return [{
    source: "github",
    registry: ctx.registry ?? url?.registry ?? GHCR,
    repository: url?.repository ?? `${owner}/${name}`.toLowerCase(),
    tag,
    digest: str(tagInfo, "digest") ?? str(version, "version"),
    id: ctx.headers.get("x-github-delivery") ?? undefined,
    timestamp: undefined,
  }];
}
