/**
 * A child process for the ECR integration tests (tests/ecr_test.ts). The AWS SDK reads its
 * configuration (AWS_ENDPOINT_URL_ECR, AWS_ROLE_ARN, …) from the process environment, so each
 * ECR case runs here, in a `deno run` of its own with exactly the environment the test gives
 * it, instead of mutating the test process's environment.
 *
 * Reads one {@linkcode EcrChildJob} as JSON on stdin and writes one JSON result on stdout.
 * Everything runs through the production code (src/credentials, src/sync); the only test
 * injection is `EcrOptions.hosts` (a local registry standing in for an ECR host), the clock
 * (`now`) and, for the race and endpoint cases, an SDK request handler that wraps or replaces
 * the network call.
 * @module
 */

import type { ImageSyncSpec } from "../../src/api/mod.ts";
import {
  credentialsForSpec,
  EcrCredentialResolver,
  type EcrOptions,
  EcrRepositories,
} from "../../src/credentials/mod.ts";
import { type SyncEvent, syncImageSync, type SyncReport } from "../../src/sync/mod.ts";

/** Prefix of the stdout line that carries the result (the SDK may print other lines). */
export const RESULT_MARK = "ECR_CHILD_RESULT ";

/** What the child should do. */
export type EcrChildJob =
  | {
    /** Run `spec` once per entry of `runs`, building fresh credentials each time (as the operator does). */
    op: "sync";
    spec: ImageSyncSpec;
    /** Local registry hosts standing in for ECR registries. */
    hosts?: EcrOptions["hosts"];
    /** Per run: the clock the token cache sees (ISO time; default the real clock). */
    runs: Array<{ clock?: string }>;
    /** Extra ECRClient config (e.g. another region, to provoke a region mismatch). */
    clientConfig?: Record<string, unknown>;
  }
  | {
    /** Resolve credentials for each registry host with a fresh resolver. */
    op: "resolve";
    registries: string[];
  }
  | {
    /** Which ECR API endpoint the SDK would call for each registry host (no request is sent). */
    op: "endpoints";
    registries: string[];
  }
  | {
    /**
     * ensureRepository while another writer creates the same repository between our
     * DescribeRepositories (not found) and our CreateRepository.
     */
    op: "race";
    registry: string;
    repository: string;
    hosts?: EcrOptions["hosts"];
  };

/** An error as the child reports it. */
export interface ChildError {
  name: string;
  reason?: string;
  message: string;
}

/** One sync run's outcome. */
export interface ChildRun {
  report?: SyncReport;
  error?: ChildError;
  events: SyncEvent[];
}

function describe(e: unknown): ChildError {
  const err = e as { name?: string; reason?: unknown; message?: string };
  const out: ChildError = { name: err?.name ?? "Error", message: err?.message ?? String(e) };
  if (typeof err?.reason === "string") out.reason = err.reason;
  return out;
}

async function runSync(job: Extract<EcrChildJob, { op: "sync" }>): Promise<ChildRun[]> {
  const out: ChildRun[] = [];
  for (const run of job.runs) {
    // A fresh options object and fresh resolvers per run, as each reconcile builds them.
    const ecr: EcrOptions = { hosts: job.hosts };
    if (run.clock) {
      const at = Date.parse(run.clock);
      ecr.now = () => at;
    }
    if (job.clientConfig) ecr.clientConfig = job.clientConfig;
    const events: SyncEvent[] = [];
    try {
      const creds = await credentialsForSpec(job.spec, {
        namespace: "default",
        loadSecret: () => Promise.resolve(undefined),
        ecr,
      });
      const report = await syncImageSync(job.spec, {
        sourceCredentials: creds.source,
        destinationCredentials: creds.destination,
        repositories: creds.repositories,
        onEvent: (e) => events.push(e),
      });
      out.push({ report, events });
    } catch (e) {
      out.push({ error: describe(e), events });
    }
  }
  return out;
}

async function runResolve(registries: string[]) {
  const out: Array<{ registry: string; username?: string; password?: string; error?: ChildError }> = [];
  for (const registry of registries) {
    try {
      const cred = await new EcrCredentialResolver().resolve(registry) as {
        username: string;
        password: string;
      };
      out.push({ registry, username: cred.username, password: cred.password });
    } catch (e) {
      out.push({ registry, error: describe(e) });
    }
  }
  return out;
}

/** The part of the SDK's HttpRequest the endpoint case reads. */
interface SdkRequest {
  protocol: string;
  hostname: string;
  port?: number;
  path: string;
  headers: Record<string, string>;
}

async function runEndpoints(registries: string[]) {
  const out: Array<{ registry: string; endpoint?: string; signingRegion?: string; error?: ChildError }> = [];
  for (const registry of registries) {
    let seen: SdkRequest | undefined;
    const requestHandler = {
      handle(request: SdkRequest) {
        seen = request;
        return Promise.reject(new Error("endpoint probe: no request is sent"));
      },
    };
    try {
      await new EcrCredentialResolver({ clientConfig: { requestHandler, maxAttempts: 1 } }).resolve(registry);
      out.push({ registry, error: { name: "Error", message: "resolved without a request?" } });
    } catch (e) {
      if (!seen) {
        out.push({ registry, error: describe(e) });
        continue;
      }
      const scope = /Credential=[^/]+\/\d{8}\/([^/]+)\//.exec(seen.headers["authorization"] ?? "");
      out.push({
        registry,
        endpoint: `${seen.protocol}//${seen.hostname}${seen.port ? `:${seen.port}` : ""}${seen.path}`,
        signingRegion: scope?.[1],
      });
    }
  }
  return out;
}

async function runRace(job: Extract<EcrChildJob, { op: "race" }>) {
  const { ECRClient, CreateRepositoryCommand } = await import("@aws-sdk/client-ecr");
  const region = Object.values(job.hosts ?? {})[0]?.region ?? "us-east-1";
  const other = new ECRClient({ region });
  const inner = other.config.requestHandler as unknown as {
    handle(request: SdkRequest, options?: unknown): Promise<unknown>;
  };
  let otherWriter: string | undefined;
  const requestHandler = {
    async handle(request: SdkRequest, options?: unknown) {
      const response = await inner.handle(request, options);
      const target = request.headers["x-amz-target"] ?? "";
      if (target.endsWith(".DescribeRepositories") && otherWriter === undefined) {
        // Our DescribeRepositories has its answer (not found); another writer now wins the race.
        const made = await other.send(new CreateRepositoryCommand({ repositoryName: job.repository }));
        otherWriter = made.repository?.repositoryArn ?? "created";
      }
      return response;
    },
  };
  try {
    const repos = new EcrRepositories(job.registry, { hosts: job.hosts, clientConfig: { requestHandler } });
    const outcome = await repos.ensureRepository(job.repository);
    return { outcome, otherWriter };
  } catch (e) {
    return { error: describe(e), otherWriter };
  } finally {
    other.destroy();
  }
}

if (import.meta.main) {
  const job = JSON.parse(await new Response(Deno.stdin.readable).text()) as EcrChildJob;
  let result: unknown;
  switch (job.op) {
    case "sync":
      result = await runSync(job);
      break;
    case "resolve":
      result = await runResolve(job.registries);
      break;
    case "endpoints":
      result = await runEndpoints(job.registries);
      break;
    case "race":
      result = await runRace(job);
      break;
  }
  console.log(`${RESULT_MARK}${JSON.stringify(result)}`);
  // The SDK's clients (and their keep-alive sockets) are shared process-wide: just leave.
  Deno.exit(0);
}
