/**
 * Real CNCF distribution registries (Debian's `/usr/bin/docker-registry`, 2.8.x) for
 * integration tests, on 127.0.0.1 with a free port and a throw-away storage directory.
 *
 * Flavours:
 * - `plain`: HTTP, no auth.
 * - `basic`: HTTP with htpasswd (bcrypt) Basic auth; default user "alice" with a random password.
 * - `tls`: HTTPS with a serving certificate signed by a private CA (`caCertPem`/`caCertFile`);
 *   no auth, unless `opts.users` is given, in which case htpasswd Basic auth as well.
 * - `bearer`: HTTP with `auth.token`; tokens come from the in-process token server
 *   (./token_server.ts), which checks Basic credentials and grants only ACL'd actions.
 * @module
 */

import { dump } from "js-yaml";
import { freePort } from "./ports.ts";
import { makeCA, makeCert } from "./certs.ts";
import {
  type AclEntry,
  startTokenServer,
  type TokenRequestRecord,
  type TokenServer,
} from "./token_server.ts";
import { pumpLines, sleep } from "./process.ts";

export type { AclEntry, TokenRequestRecord } from "./token_server.ts";

/** The registry flavours the harness can start. */
export type RegistryKind = "plain" | "basic" | "tls" | "bearer";

/** A running registry. */
export interface RegistryServer {
  /** Which flavour this is. */
  kind: RegistryKind;
  /** "127.0.0.1:PORT" — the registry part of an image reference. */
  host: string;
  /** "http://host" or "https://host" (tls). */
  url: string;
  /** The first user's name, for basic and bearer (and tls when users were given). */
  username?: string;
  /** The first user's password. */
  password?: string;
  /** tls: the private CA certificate (PEM) that signed the serving certificate. */
  caCertPem?: string;
  /** tls: path of the same CA certificate. */
  caCertFile?: string;
  /** bearer: the token server URL the registry names as realm. */
  tokenRealm?: string;
  /** bearer: every token request the token server saw, in order. */
  tokenRequests?: TokenRequestRecord[];
  /** The storage root directory of the registry (filesystem driver). */
  storageDir: string;
  /**
   * "METHOD /request-uri STATUS" lines from the registry's access log, in order, e.g.
   * "PUT /v2/foo/manifests/v1 201". The request URI keeps its query string.
   * Lines arrive asynchronously; call {@linkcode RegistryServer.flushLog} first to be sure
   * every request that has already been answered is included.
   */
  requestLog(): string[];
  /** Waits until every request answered so far is in the access log, then returns requestLog(). */
  flushLog(): Promise<string[]>;
  /** All raw output lines of the registry process (stdout and stderr), for debugging. */
  logs(): string[];
  /** Stops the registry (and token server) and removes its temp directory. */
  stop(): Promise<void>;
}

/** Options for {@linkcode startRegistry}. */
export interface StartRegistryOptions {
  /** user → password for basic, bearer (and tls, which then requires Basic auth). */
  users?: Record<string, string>;
  /** bearer: token server access rules (default: see token_server.ts DEFAULT_ACL). */
  acl?: AclEntry[];
  /** Accept pushes of (signed) schema1 manifests: `compatibility.schema1.enabled`. */
  schema1?: boolean;
  /** The `notifications` section of the config (endpoints the registry POSTs its events to). */
  notifications?: Record<string, unknown>;
}

/** Thrown when the registry does not come up; `reason` is always "RegistryStartFailed". */
export class RegistryStartError extends Error {
  /** Stable machine-readable reason. */
  readonly reason = "RegistryStartFailed";
  /** Creates the error with the registry output for diagnosis. */
  constructor(message: string, output: string[]) {
    super(`${message}\n--- registry output ---\n${output.slice(-40).join("\n")}`);
    this.name = "RegistryStartError";
  }
}

const REGISTRY_BIN = "/usr/bin/docker-registry";
const ACCESS_LINE = /"([A-Z]+) (\S+) HTTP\/[\d.]+" (\d{3}) /;
/** Query marker of the harness's own requests (readiness probe, log flush), hidden from requestLog(). */
const HARNESS_MARK = "portager-harness=";

function randomPassword(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function writeHtpasswd(file: string, users: Record<string, string>): Promise<void> {
  let text = "";
  for (const [user, password] of Object.entries(users)) {
    const out = await new Deno.Command("htpasswd", {
      args: ["-Bbn", user, password],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(`htpasswd failed for ${user}: ${new TextDecoder().decode(out.stderr)}`);
    }
    text += new TextDecoder().decode(out.stdout).trim() + "\n";
  }
  await Deno.writeTextFile(file, text);
}

interface Proc {
  child: Deno.ChildProcess;
  lines: string[];
  pumps: Promise<void>;
  exited: boolean;
  /** Resolvers waiting for a line that contains a marker. */
  waiters: Array<{ mark: string; resolve: () => void }>;
}

function spawnRegistry(configFile: string): Proc {
  const child = new Deno.Command(REGISTRY_BIN, {
    args: ["serve", configFile],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    clearEnv: true, // REGISTRY_* variables would override the config
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
  }).spawn();
  const proc: Proc = { child, lines: [], pumps: Promise.resolve(), exited: false, waiters: [] };
  const sink = (line: string) => {
    proc.lines.push(line);
    // only access-log lines count: the app log mentions the same URI on the other stream
    if (proc.waiters.length === 0 || !ACCESS_LINE.test(line)) return;
    proc.waiters = proc.waiters.filter((w) => {
      if (!line.includes(w.mark)) return true;
      w.resolve();
      return false;
    });
  };
  proc.pumps = Promise.all([pumpLines(child.stdout, sink), pumpLines(child.stderr, sink)]).then(() => {});
  child.status.then(() => {
    proc.exited = true;
  });
  return proc;
}

async function stopProc(proc: Proc): Promise<void> {
  if (!proc.exited) {
    try {
      proc.child.kill("SIGTERM");
    } catch {
      // already gone
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const killed = await Promise.race([
      proc.child.status.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), 5000);
      }),
    ]);
    clearTimeout(timer);
    if (!killed) {
      try {
        proc.child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
  }
  await proc.child.status;
  await proc.pumps;
  for (const w of proc.waiters) w.resolve();
  proc.waiters = [];
}

/**
 * Waits until our process said it listens on `host` and GET /v2/ answers 200 or 401 (so a
 * stranger that grabbed the port meanwhile is not mistaken for us). Resolves false if the
 * process exited first (e.g. the port was taken); throws on timeout.
 */
async function waitReady(proc: Proc, url: string, caCertPem?: string): Promise<boolean> {
  const listening = `listening on ${new URL(url).host}`;
  const client = caCertPem ? Deno.createHttpClient({ caCerts: [caCertPem] }) : undefined;
  try {
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (proc.exited) return false;
      try {
        const res = await fetch(`${url}/v2/?${HARNESS_MARK}ready`, client ? { client } : {});
        await res.body?.cancel();
        const ours = proc.lines.some((l) => l.includes(listening));
        if (ours && (res.status === 200 || res.status === 401)) return true;
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
    throw new RegistryStartError(`registry at ${url} did not answer /v2/ within 30 s`, proc.lines);
  } finally {
    client?.close();
  }
}

/**
 * Starts a registry of the given flavour and resolves once `GET /v2/` answers. Call
 * `stop()` when done (it also removes the temp directory).
 */
export async function startRegistry(
  kind: RegistryKind,
  opts: StartRegistryOptions = {},
): Promise<RegistryServer> {
  const dir = await Deno.makeTempDir({ prefix: `portager-registry-${kind}-` });
  let token: TokenServer | undefined;
  try {
    const storageDir = `${dir}/storage`;
    await Deno.mkdir(storageDir);
    let users: Record<string, string> | undefined = opts.users;
    if (!users && (kind === "basic" || kind === "bearer")) users = { alice: randomPassword() };
    const [username, password] = users ? (Object.entries(users)[0] ?? []) : [];

    // deno-lint-ignore no-explicit-any
    const config: Record<string, any> = {
      version: 0.1,
      log: { level: "info", formatter: "text", accesslog: { disabled: false } },
      storage: {
        filesystem: { rootdirectory: storageDir },
        delete: { enabled: true },
        maintenance: { uploadpurging: { enabled: false } },
      },
      http: { addr: "", secret: randomPassword(), headers: { "X-Content-Type-Options": ["nosniff"] } },
      health: { storagedriver: { enabled: false } },
    };
    if (opts.schema1) config.compatibility = { schema1: { enabled: true } };
    if (opts.notifications) config.notifications = opts.notifications;

    let caCertPem: string | undefined;
    let caCertFile: string | undefined;
    if (kind === "tls") {
      const ca = await makeCA(dir, "portager-test-registry-ca");
      const serving = await makeCert(dir, ca, {
        cn: "127.0.0.1",
        sans: ["127.0.0.1", "localhost"],
        name: "registry",
      });
      config.http.tls = { certificate: serving.certFile, key: serving.keyFile };
      caCertPem = ca.certPem;
      caCertFile = ca.certFile;
    }
    if (users && (kind === "basic" || kind === "tls")) {
      const file = `${dir}/htpasswd`;
      await writeHtpasswd(file, users);
      config.auth = { htpasswd: { realm: "portager-test-registry", path: file } };
    }
    if (kind === "bearer") {
      token = await startTokenServer(dir, { users: users ?? {}, acl: opts.acl });
      config.auth = {
        token: {
          realm: token.realm,
          service: token.service,
          issuer: token.issuer,
          rootcertbundle: token.certFile,
        },
      };
    }

    const scheme = kind === "tls" ? "https" : "http";
    const configFile = `${dir}/config.yml`;
    let proc: Proc | undefined;
    let host = "";
    for (let attempt = 0; attempt < 5 && !proc; attempt++) {
      host = `127.0.0.1:${freePort()}`;
      config.http.addr = host;
      await Deno.writeTextFile(configFile, dump(config));
      const p = spawnRegistry(configFile);
      let ready = false;
      try {
        ready = await waitReady(p, `${scheme}://${host}`, caCertPem);
      } finally {
        if (!ready) await stopProc(p);
      }
      if (ready) proc = p;
      else if (!p.lines.some((l) => l.includes("address already in use"))) {
        throw new RegistryStartError(`registry exited during start-up`, p.lines);
      }
    }
    if (!proc) throw new RegistryStartError("no free port after 5 attempts", []);

    const url = `${scheme}://${host}`;
    const running = proc;
    let flushes = 0;
    let stopped = false;
    const tokenServer = token;
    const server: RegistryServer = {
      kind,
      host,
      url,
      storageDir,
      requestLog() {
        const out: string[] = [];
        for (const line of running.lines) {
          const m = line.match(ACCESS_LINE);
          if (m && !m[2].includes(HARNESS_MARK)) out.push(`${m[1]} ${m[2]} ${m[3]}`);
        }
        return out;
      },
      async flushLog() {
        const mark = `${HARNESS_MARK}flush-${++flushes}`;
        const seen = new Promise<void>((resolve) => running.waiters.push({ mark, resolve }));
        const client = caCertPem ? Deno.createHttpClient({ caCerts: [caCertPem] }) : undefined;
        try {
          const res = await fetch(`${url}/v2/?${mark}`, client ? { client } : {});
          await res.body?.cancel();
        } finally {
          client?.close();
        }
        await seen;
        return server.requestLog();
      },
      logs() {
        return [...running.lines];
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await stopProc(running);
        await tokenServer?.stop();
        await Deno.remove(dir, { recursive: true });
      },
    };
    if (username !== undefined) {
      server.username = username;
      server.password = password;
    }
    if (caCertPem) {
      server.caCertPem = caCertPem;
      server.caCertFile = caCertFile;
    }
    if (tokenServer) {
      server.tokenRealm = tokenServer.realm;
      server.tokenRequests = tokenServer.requests;
    }
    return server;
  } catch (e) {
    await token?.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw e;
  }
}
