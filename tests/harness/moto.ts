/**
 * moto (the AWS API emulator from PyPI, `moto[server]`) for ECR and STS integration tests, on
 * 127.0.0.1 with a free port and a throw-away directory.
 *
 * The server runs from the venv scripts/setup.sh installs once per version
 * (`${PORTAGER_TEST_CACHE:-$HOME/.cache/portager-test}/moto-<version>/bin/moto_server`). Every
 * request is recorded (moto's own recorder), so tests can say which AWS actions were called,
 * signed for which region and with which access key. IAM is not enforced until
 * {@linkcode MotoServer.enforceIam} is called; until then {@linkcode MotoServer.iam} and
 * {@linkcode MotoServer.ecr} set up roles, users and repositories with a dummy signature.
 * @module
 */

import { freePort } from "./ports.ts";
import { toolCacheDir } from "./tools.ts";
import { pumpLines, sleep } from "./process.ts";

/** The account moto answers for by default. */
export const MOTO_ACCOUNT = "123456789012";

/** Thrown when moto is not installed; `reason` is always "ToolMissing". */
export class MotoMissingError extends Error {
  /** Stable machine-readable reason. */
  readonly reason = "ToolMissing";
  /** Creates the error for the expected path. */
  constructor(readonly path: string) {
    super(
      `moto is not installed: ${path} is missing. Run scripts/setup.sh (it installs ` +
        `moto[server] into a venv under the test cache once per version).`,
    );
    this.name = "MotoMissingError";
  }
}

/** One AWS API request moto received. */
export interface MotoCall {
  /** Service: "ecr", "sts", "iam", … (from the signature scope or the ECR target header). */
  service: string;
  /** Action name, e.g. "GetAuthorizationToken", "AssumeRoleWithWebIdentity". */
  action: string;
  /** Region of the SigV4 credential scope; undefined for unsigned requests. */
  region?: string;
  /** Access key id that signed the request; undefined for unsigned requests. */
  accessKeyId?: string;
  /** Request parameters: the JSON body (ECR) or the form fields (Query APIs such as STS, IAM). */
  params: Record<string, unknown>;
}

/** A running moto server. */
export interface MotoServer {
  /** "http://127.0.0.1:PORT": what AWS_ENDPOINT_URL_ECR / AWS_ENDPOINT_URL_STS point at. */
  url: string;
  /** Every AWS API request received since start (or the last {@linkcode MotoServer.resetCalls}). */
  calls(): Promise<MotoCall[]>;
  /** Forgets the recorded requests. */
  resetCalls(): Promise<void>;
  /**
   * Enforces IAM (signatures and policies) from now on, after `freeActions` more requests go
   * through unchecked. moto cannot check an unsigned request (its IAM layer needs an
   * Authorization header), so a web-identity flow needs `freeActions: 1` for the
   * AssumeRoleWithWebIdentity call that precedes the signed ECR calls.
   */
  enforceIam(freeActions?: number): Promise<void>;
  /** Stops enforcing IAM. */
  relaxIam(): Promise<void>;
  /** Calls an IAM (Query API) action while IAM is not enforced; returns the XML response. */
  iam(action: string, params?: Record<string, string>): Promise<string>;
  /** Calls an ECR (JSON API) action in `region` while IAM is not enforced; returns the JSON response. */
  ecr(action: string, body?: Record<string, unknown>, region?: string): Promise<Record<string, unknown>>;
  /** Creates a role that a web identity may assume, allowed `actions` on every resource; returns its ARN. */
  createWebIdentityRole(name: string, actions: string[]): Promise<string>;
  /** Creates an IAM user allowed `actions` (none: no policy) with an access key. */
  createUser(name: string, actions: string[]): Promise<{ accessKeyId: string; secretAccessKey: string }>;
  /** Everything moto printed (stdout and stderr), for failure messages. */
  logs(): string[];
  /** Stops moto and removes its directory. */
  stop(): Promise<void>;
}

/** The moto version scripts/setup.sh installs (env MOTO_VERSION first, then the script default). */
export function motoVersion(): string {
  const fromEnv = Deno.env.get("MOTO_VERSION");
  if (fromEnv) return fromEnv;
  const script = Deno.readTextFileSync(new URL("../../scripts/setup.sh", import.meta.url));
  const m = script.match(/MOTO_VERSION="\$\{MOTO_VERSION:-([^}"]+)\}"/);
  if (!m) throw new Error("cannot find the default MOTO_VERSION in scripts/setup.sh");
  return m[1];
}

/** Absolute path of moto_server; throws {@linkcode MotoMissingError} if it is not installed. */
export function motoServerPath(): string {
  const path = `${toolCacheDir()}/moto-${motoVersion()}/bin/moto_server`;
  try {
    Deno.statSync(path);
  } catch {
    throw new MotoMissingError(path);
  }
  return path;
}

const DUMMY_DATE = "20260101";
const ECR_TARGET = "AmazonEC2ContainerRegistry_V20150921.";

function dummyAuthorization(service: string, region: string): string {
  return `AWS4-HMAC-SHA256 Credential=AKIAHARNESSSETUP0000/${DUMMY_DATE}/${region}/${service}/aws4_request, ` +
    `SignedHeaders=host, Signature=0`;
}

function headerOf(headers: Record<string, string>, name: string): string | undefined {
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === lower) return v;
  return undefined;
}

/** Turns one line of moto's recording into a {@linkcode MotoCall}; undefined for moto-api requests. */
function parseRecorded(line: string): MotoCall | undefined {
  const entry = JSON.parse(line) as {
    headers: Record<string, string>;
    url: string;
    body?: string | null;
    body_encoded?: boolean;
  };
  if (new URL(entry.url).pathname.startsWith("/moto-api")) return undefined;
  const body = entry.body ? (entry.body_encoded ? atob(entry.body) : entry.body) : "";
  const auth = headerOf(entry.headers, "Authorization") ?? "";
  const scope = /Credential=([^/]+)\/\d{8}\/([^/]+)\/([^/]+)\//.exec(auth);
  const target = headerOf(entry.headers, "X-Amz-Target");
  let service = scope?.[3] ?? "";
  let action = "";
  let params: Record<string, unknown> = {};
  if (target) {
    action = target.slice(target.indexOf(".") + 1);
    if (target.startsWith(ECR_TARGET)) service = "ecr";
    params = body ? JSON.parse(body) : {};
  } else {
    const form = new URLSearchParams(body || new URL(entry.url).search);
    params = Object.fromEntries(form);
    action = form.get("Action") ?? "";
    if (!service && action.startsWith("AssumeRoleWith")) service = "sts";
  }
  const call: MotoCall = { service, action, params };
  if (scope) {
    call.accessKeyId = scope[1];
    call.region = scope[2];
  }
  return call;
}

/** Starts moto_server and resolves once it answers. Call `stop()` when done. */
export async function startMoto(): Promise<MotoServer> {
  const bin = motoServerPath();
  const dir = await Deno.makeTempDir({ prefix: "portager-moto-" });
  const recording = `${dir}/recording.jsonl`;
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = freePort();
      const url = `http://127.0.0.1:${port}`;
      const lines: string[] = [];
      const child = new Deno.Command(bin, {
        args: ["-H", "127.0.0.1", "-p", String(port)],
        cwd: dir,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        clearEnv: true, // no AWS_* or MOTO_* of the caller leaks in
        env: {
          PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
          HOME: dir,
          MOTO_ENABLE_RECORDING: "true",
          MOTO_RECORDER_FILEPATH: recording,
        },
      }).spawn();
      let exited = false;
      const status = child.status.then((s) => {
        exited = true;
        return s;
      });
      const pumps = Promise.all([
        pumpLines(child.stdout, (l) => lines.push(l)),
        pumpLines(child.stderr, (l) => lines.push(l)),
      ]);
      const stopChild = async () => {
        if (!exited) {
          try {
            child.kill("SIGTERM");
          } catch {
            // already gone
          }
        }
        await status;
        await pumps;
      };

      let ready = false;
      const deadline = Date.now() + 60_000;
      while (!exited && Date.now() < deadline) {
        try {
          const res = await fetch(`${url}/moto-api/data.json`);
          await res.body?.cancel();
          if (res.ok && lines.some((l) => l.includes(`Running on ${url}`))) {
            ready = true;
            break;
          }
        } catch {
          // not listening yet
        }
        await sleep(100);
      }
      if (!ready) {
        await stopChild();
        if (lines.some((l) => /address already in use/i.test(l))) continue;
        throw new Error(`moto did not start at ${url}:\n${lines.slice(-30).join("\n")}`);
      }

      const post = async (path: string, body: string, headers: Record<string, string> = {}) => {
        const res = await fetch(`${url}${path}`, { method: "POST", body, headers });
        const text = await res.text();
        if (!res.ok) throw new Error(`moto ${path}: HTTP ${res.status}: ${text.slice(0, 500)}`);
        return text;
      };
      const iam = (action: string, params: Record<string, string> = {}) =>
        post("/", new URLSearchParams({ Action: action, Version: "2010-05-08", ...params }).toString(), {
          "content-type": "application/x-www-form-urlencoded",
          authorization: dummyAuthorization("iam", "us-east-1"),
        });
      const allow = (actions: string[]) =>
        JSON.stringify({
          Version: "2012-10-17",
          Statement: [{ Effect: "Allow", Action: actions, Resource: "*" }],
        });
      let stopped = false;

      const server: MotoServer = {
        url,
        async calls() {
          let text = "";
          try {
            text = await Deno.readTextFile(recording);
          } catch (e) {
            if (!(e instanceof Deno.errors.NotFound)) throw e;
          }
          return text.split("\n").filter((l) => l.trim() !== "").map(parseRecorded).filter((c) =>
            c !== undefined
          );
        },
        async resetCalls() {
          await post("/moto-api/recorder/reset-recording", "");
        },
        async enforceIam(freeActions = 0) {
          await post("/moto-api/reset-auth", String(freeActions));
        },
        async relaxIam() {
          await post("/moto-api/reset-auth", "inf");
        },
        iam,
        async ecr(action, body = {}, region = "us-east-1") {
          const text = await post("/", JSON.stringify(body), {
            "content-type": "application/x-amz-json-1.1",
            "x-amz-target": ECR_TARGET + action,
            authorization: dummyAuthorization("ecr", region),
          });
          return text ? JSON.parse(text) : {};
        },
        async createWebIdentityRole(name, actions) {
          const trust = JSON.stringify({
            Version: "2012-10-17",
            Statement: [{
              Effect: "Allow",
              Principal: { Federated: `arn:aws:iam::${MOTO_ACCOUNT}:oidc-provider/oidc.eks.example` },
              Action: "sts:AssumeRoleWithWebIdentity",
            }],
          });
          await iam("CreateRole", { RoleName: name, AssumeRolePolicyDocument: trust });
          if (actions.length > 0) {
            await iam("PutRolePolicy", {
              RoleName: name,
              PolicyName: `${name}-policy`,
              PolicyDocument: allow(actions),
            });
          }
          return `arn:aws:iam::${MOTO_ACCOUNT}:role/${name}`;
        },
        async createUser(name, actions) {
          await iam("CreateUser", { UserName: name });
          if (actions.length > 0) {
            await iam("PutUserPolicy", {
              UserName: name,
              PolicyName: `${name}-policy`,
              PolicyDocument: allow(actions),
            });
          }
          const xml = await iam("CreateAccessKey", { UserName: name });
          const pick = (tag: string) => {
            const m = new RegExp(`<${tag}>([^<]+)</${tag}>`).exec(xml);
            if (!m) throw new Error(`moto CreateAccessKey: no ${tag} in ${xml.slice(0, 300)}`);
            return m[1];
          };
          return { accessKeyId: pick("AccessKeyId"), secretAccessKey: pick("SecretAccessKey") };
        },
        logs() {
          return [...lines];
        },
        async stop() {
          if (stopped) return;
          stopped = true;
          await stopChild();
          await Deno.remove(dir, { recursive: true });
        },
      };
      return server;
    }
    throw new Error("moto: no free port after 5 attempts");
  } catch (e) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw e;
  }
}

/**
 * The environment for a child that must see no AWS configuration of this process: what Deno
 * needs to find its npm cache (PATH, HOME, DENO_DIR, XDG_CACHE_HOME, NPM_CONFIG_REGISTRY),
 * NO_COLOR, AWS config and credential files pointed at absent files in `dir`, no instance
 * metadata probes; then `extra`. Spawn with `clearEnv: true`.
 */
export function isolatedAwsEnv(dir: string, extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME", "NPM_CONFIG_REGISTRY"]) {
    const v = Deno.env.get(k);
    if (v !== undefined) env[k] = v;
  }
  return {
    ...env,
    NO_COLOR: "1",
    AWS_CONFIG_FILE: `${dir}/no-aws-config`,
    AWS_SHARED_CREDENTIALS_FILE: `${dir}/no-aws-credentials`,
    // no instance metadata service here; skip the SDK's 1 s probes of it
    AWS_EC2_METADATA_DISABLED: "true",
    ...extra,
  };
}
