import assert from "node:assert/strict";
import { MAX_TOKEN_RESPONSE_BYTES, textRequest, tokenRequest } from "./gar_http.ts";
import { CredentialError } from "./errors.ts";

async function withServer(
  handler: (req: Request) => Response | Promise<Response>,
  fn: (base: string, hits: string[]) => Promise<void>,
): Promise<void> {
  const hits: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    hits.push(new URL(req.url).pathname);
    return handler(req);
  });
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`, hits);
  } finally {
    await server.shutdown();
  }
}

const opts = { source: "GOOGLE_APPLICATION_CREDENTIALS file /c.json", what: "STS token exchange" };

function authFailed(message: RegExp, absent: string[] = []): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof CredentialError, String(e));
    assert.equal(e.reason, "AuthFailed");
    assert.match(e.message, message);
    for (const s of absent) assert.ok(!e.message.includes(s), `leaks ${s}: ${e.message}`);
    return true;
  };
}

Deno.test("token requests: a remote error is quoted shortened and without the secrets the request carried", async () => {
  const secret = "subject-token-abcdef";
  await withServer(
    () =>
      Response.json(
        { error: "invalid_grant", error_description: `bad token ${secret} ` + "x".repeat(2000) },
        {
          status: 400,
        },
      ),
    async (base) => {
      await assert.rejects(
        tokenRequest(`${base}/v1/token?key=q`, { method: "POST" }, { ...opts, secrets: [secret] }),
        authFailed(
          /^GOOGLE_APPLICATION_CREDENTIALS file \/c\.json: STS token exchange: 127\.0\.0\.1:\d+ refused the token request \(HTTP 400\): invalid_grant: bad token \[redacted\] x+…$/,
          [secret, "key=q", "/v1/token"],
        ),
      );
    },
  );
  // Google JSON API errors ({error: {status, message}}) and AWS XML errors are quoted too.
  await withServer(
    () =>
      Response.json({ error: { code: 403, status: "PERMISSION_DENIED", message: "denied" } }, {
        status: 403,
      }),
    async (base) => {
      await assert.rejects(
        tokenRequest(base, {}, opts),
        authFailed(/\(HTTP 403\): PERMISSION_DENIED: denied$/),
      );
    },
  );
  await withServer(
    () => new Response("<Error><Code>SignatureDoesNotMatch</Code></Error>", { status: 403 }),
    async (base) => {
      await assert.rejects(textRequest(base, {}, opts), authFailed(/\(HTTP 403\): SignatureDoesNotMatch$/));
    },
  );
});

Deno.test("token requests: bounded bodies, redirects not followed, JSON objects only", async () => {
  await withServer((req) => {
    const path = new URL(req.url).pathname;
    if (path === "/big") return new Response("a".repeat(MAX_TOKEN_RESPONSE_BYTES + 1));
    if (path === "/redirect") return new Response(null, { status: 302, headers: { location: "/elsewhere" } });
    if (path === "/array") return Response.json([1]);
    if (path === "/text") return new Response("hello");
    return Response.json({ access_token: "t" });
  }, async (base, hits) => {
    await assert.rejects(textRequest(`${base}/big`, {}, opts), authFailed(/answered more than 262144 bytes/));
    await assert.rejects(
      textRequest(`${base}/redirect`, { headers: { authorization: "Bearer x" } }, opts),
      authFailed(/answered a redirect \(HTTP 302\); token requests are not followed/),
    );
    assert.ok(!hits.includes("/elsewhere"), "the redirect was not followed");
    await assert.rejects(tokenRequest(`${base}/array`, {}, opts), authFailed(/not a JSON object/));
    await assert.rejects(tokenRequest(`${base}/text`, {}, opts), authFailed(/not a JSON object/));
    assert.deepEqual(await tokenRequest(`${base}/ok`, {}, opts), { access_token: "t" });
  });
});

Deno.test("token requests: a stalled endpoint times out with the host named", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of listener) conns.push(c);
  })();
  try {
    const port = (listener.addr as Deno.NetAddr).port;
    await assert.rejects(
      textRequest(`http://127.0.0.1:${port}/token`, {}, { ...opts, timeoutMs: 200 }),
      authFailed(new RegExp(`cannot reach 127\\.0\\.0\\.1:${port}`)),
    );
  } finally {
    listener.close();
    for (const c of conns) c.close();
    await accepting.catch(() => {});
  }
});
