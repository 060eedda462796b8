/**
 * The command lines each program is run with, for one copy or one sync, all against
 * plain-HTTP registries on 127.0.0.1. Each peer gets its documented "insecure" switch
 * (skopeo --*-tls-verify=false, crane --insecure, regctl/regsync tls disabled) and runs with
 * HOME pointed at a scratch folder so no user configuration leaks in or out.
 * @module
 */

import { dump } from "js-yaml";
import type { Peer, PortagerForm } from "./tools.ts";

/** A process to run. */
export interface Invocation {
  /** Executable. */
  cmd: string;
  /** Arguments. */
  args: string[];
  /** Extra environment. */
  env?: Record<string, string>;
}

/** One image: `host/repository:tag`. */
export interface ImageRef {
  /** "127.0.0.1:PORT". */
  host: string;
  /** Repository path. */
  repository: string;
  /** Tag. */
  tag: string;
}

/** `host/repository:tag`. */
export function refString(ref: ImageRef): string {
  return `${ref.host}/${ref.repository}:${ref.tag}`;
}

/** One image of an ImageSync: source repository and its tags. */
export interface SyncImage {
  /** Repository path, the same at source and destination. */
  name: string;
  /** Tags to sync. */
  tags: string[];
}

/** A sync job: images from one registry to another, same repository names. */
export interface SyncJob {
  /** Source registry host. */
  source: string;
  /** Destination registry host. */
  destination: string;
  /** Images and their tags. */
  images: SyncImage[];
}

/** Options shared by the command builders. */
export interface CommandOptions {
  /** Scratch folder for config files and HOME. */
  scratch: string;
  /** Transfers in flight, where the program has a switch for it (undefined: its default). */
  concurrency?: number;
}

/** The ImageSync documents for `portager sync -f` (one ImageSync per job). */
export function imageSyncYaml(job: SyncJob, name = "bench"): string {
  return dump({
    apiVersion: "portager.portager.io/v1alpha1",
    kind: "ImageSync",
    metadata: { name, namespace: "default" },
    spec: {
      schedule: "@every 1h",
      source: { registry: job.source },
      destination: { registry: job.destination, auth: { method: "anonymous" } },
      images: job.images.map((i) => ({ name: i.name, tags: i.tags })),
    },
  });
}

/**
 * The form's arguments with `dir` added to a scoped `--allow-read=…`: the binary of the image
 * may read only /var/run/secrets and /etc/portager, while `sync -f` reads the spec file and
 * `$HOME/.docker/config.json` from the bench's scratch folder. Nothing else changes.
 */
export function withReadAccess(args: string[], dir: string): string[] {
  return args.map((a) => a.startsWith("--allow-read=") ? `${a},${dir}` : a);
}

/** `portager sync -f <spec>` for a job (the spec and HOME in `opts.scratch`, readable). */
export function portagerSync(form: PortagerForm, job: SyncJob, opts: CommandOptions): Invocation {
  const file = `${opts.scratch}/imagesync-${crypto.randomUUID().slice(0, 8)}.yaml`;
  Deno.writeTextFileSync(file, imageSyncYaml(job));
  const args = [
    ...withReadAccess(form.args, opts.scratch),
    "sync",
    "-f",
    file,
    "--output",
    "json",
    "--log-level",
    "error",
  ];
  if (opts.concurrency !== undefined) args.push("--concurrency", String(opts.concurrency));
  return { cmd: form.cmd, args, env: { ...form.env, HOME: opts.scratch, NO_COLOR: "1" } };
}

function peerPath(peer: Peer): string {
  if (!peer.path) throw new Error(`${peer.name} is unavailable: ${peer.missing}`);
  return peer.path;
}

/** Copies one image with a peer (skopeo copy, crane copy, regctl image copy). */
export function peerCopy(peer: Peer, src: ImageRef, dst: ImageRef, opts: CommandOptions): Invocation {
  const path = peerPath(peer);
  const env = { HOME: opts.scratch };
  switch (peer.name) {
    case "skopeo":
      // skopeo 1.9 has no switch for parallel layer copies (containers/image copies up to 6 at once)
      return {
        cmd: path,
        args: [
          "--insecure-policy",
          "copy",
          "--quiet",
          "--preserve-digests",
          "--src-tls-verify=false",
          "--dest-tls-verify=false",
          `docker://${refString(src)}`,
          `docker://${refString(dst)}`,
        ],
        env,
      };
    case "crane": {
      const args = ["copy", "--insecure"];
      if (opts.concurrency !== undefined) args.push("--jobs", String(opts.concurrency));
      return { cmd: path, args: [...args, refString(src), refString(dst)], env };
    }
    case "regctl": {
      // per-host request concurrency is a config setting; HOME is the scratch folder, so
      // regctl's config file is written there (see regctlConfigure)
      return {
        cmd: path,
        args: ["image", "copy", refString(src), refString(dst)],
        env,
      };
    }
    default:
      throw new Error(`${peer.name} has no single-image copy here`);
  }
}

/**
 * regctl keeps host settings in $HOME/.regctl/config.json; writes the settings for plain
 * HTTP (and the request concurrency, when given) for each host.
 */
export function regctlConfig(hosts: string[], opts: CommandOptions): void {
  const config: Record<string, unknown> = { hosts: {} };
  for (const h of hosts) {
    const host: Record<string, unknown> = { tls: "disabled", hostname: h };
    if (opts.concurrency !== undefined) host.reqConcurrent = opts.concurrency;
    (config.hosts as Record<string, unknown>)[h] = host;
  }
  Deno.mkdirSync(`${opts.scratch}/.regctl`, { recursive: true });
  Deno.writeTextFileSync(`${opts.scratch}/.regctl/config.json`, JSON.stringify(config, null, 2));
}

/** skopeo sync from a YAML source list (explicit tags per repository). */
export function skopeoSync(peer: Peer, job: SyncJob, opts: CommandOptions): Invocation {
  const file = `${opts.scratch}/skopeo-sync-${crypto.randomUUID().slice(0, 8)}.yaml`;
  const images: Record<string, string[]> = {};
  for (const i of job.images) images[i.name] = i.tags;
  Deno.writeTextFileSync(file, dump({ [job.source]: { "tls-verify": false, images } }));
  // skopeo sync (without --scoped) writes DESTINATION/<last path component>:tag, so the
  // destination names the images' common parent folder to keep repository names equal.
  const parents = new Set(
    job.images.map((i) => i.name.includes("/") ? i.name.slice(0, i.name.lastIndexOf("/")) : ""),
  );
  if (parents.size !== 1) throw new Error("skopeoSync needs images under one parent folder");
  const parent = [...parents][0];
  return {
    cmd: peerPath(peer),
    args: [
      "--insecure-policy",
      "sync",
      "--src",
      "yaml",
      "--dest",
      "docker",
      "--preserve-digests",
      "--src-tls-verify=false",
      "--dest-tls-verify=false",
      file,
      parent ? `${job.destination}/${parent}` : job.destination,
    ],
    env: { HOME: opts.scratch },
  };
}

/** `regsync once` with one sync entry per repository (explicit tags allowed). */
export function regsyncOnce(peer: Peer, job: SyncJob, opts: CommandOptions): Invocation {
  const file = `${opts.scratch}/regsync-${crypto.randomUUID().slice(0, 8)}.yaml`;
  const creds = [job.source, job.destination].map((registry) => {
    const c: Record<string, unknown> = { registry, tls: "disabled" };
    if (opts.concurrency !== undefined) c.reqConcurrent = opts.concurrency;
    return c;
  });
  const defaults: Record<string, unknown> = {};
  if (opts.concurrency !== undefined) defaults.parallel = opts.concurrency;
  const config = {
    version: 1,
    creds,
    defaults,
    sync: job.images.map((i) => ({
      source: `${job.source}/${i.name}`,
      target: `${job.destination}/${i.name}`,
      type: "repository",
      // regsync anchors each allow pattern itself (^…$)
      tags: { allow: i.tags.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")) },
    })),
  };
  Deno.writeTextFileSync(file, dump(config));
  return {
    cmd: peerPath(peer),
    args: ["once", "-c", file, "--verbosity", "warn"],
    env: { HOME: opts.scratch },
  };
}
