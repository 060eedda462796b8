/**
 * Docker Hub webhooks: `{"push_data": {"pushed_at": <unix s>, "tag": "latest"}, "repository":
 * {"repo_name": "org/app"}, "callback_url": …}`. Docker Hub neither signs nor sets headers, so
 * the endpoint URL carries the token (`?token=`); the registry is always `docker.io`.
 * @module
 */

import { DOCKER_HUB } from "../oci/mod.ts";
import { malformed, obj, type ParseContext, parseTime, type PushEvent, str } from "./event.ts";

/** Reads a Docker Hub webhook into its one push. */
export function parseDockerHub(body: unknown, _ctx: ParseContext): PushEvent[] {
  const push = obj(body, "push_data");
  const repo = obj(body, "repository");
  const repository = str(repo, "repo_name") ??
    (str(repo, "namespace") && str(repo, "name")
      ? `${str(repo, "namespace")}/${str(repo, "name")}`
      : undefined);
  if (!push || !repository) throw malformed("dockerhub", "push_data or repository.repo_name is missing");
  const tag = str(push, "tag");
  const timestamp = parseTime(push.pushed_at);
  return [{
    source: "dockerhub",
    registry: DOCKER_HUB,
    repository: repository.includes("/") ? repository : `library/${repository}`,
    tag,
    id: `${repository}:${tag ?? ""}@${push.pushed_at ?? ""}`,
    timestamp,
  }];
}
