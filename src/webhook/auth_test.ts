import assert from "node:assert/strict";
import { authenticate, githubSignature, SECRET_REFRESH_MS, WebhookSecret } from "./auth.ts";
import { WebhookError } from "./errors.ts";

const SECRET = "s3cret-s3cret-s3cret";
const body = new TextEncoder().encode('{"action":"published"}');
const url = new URL("http://x/webhook/github");

function refused(fn: () => void): WebhookError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof WebhookError);
    assert.deepStrictEqual([e.reason, e.status], ["Unauthenticated", 401]);
    return e;
  }
  throw new Error("accepted");
}

Deno.test("github: the body's HMAC-SHA256 under the secret passes; another body, secret or none is 401", () => {
  const sig = githubSignature(SECRET, body);
  // the value GitHub documents for this scheme: sha256= and 64 lowercase hex
  assert.deepStrictEqual(/^sha256=[0-9a-f]{64}$/.test(sig), true);
  authenticate("github", { headers: new Headers({ "x-hub-signature-256": sig }), url, body, secret: SECRET });
  refused(() =>
    authenticate("github", {
      headers: new Headers({ "x-hub-signature-256": sig }),
      url,
      body: new TextEncoder().encode('{"action":"published" }'),
      secret: SECRET,
    })
  );
  refused(() =>
    authenticate("github", {
      headers: new Headers({ "x-hub-signature-256": githubSignature("other-secret-other", body) }),
      url,
      body,
      secret: SECRET,
    })
  );
  // a bearer token is not enough where the sender signs
  const e = refused(() =>
    authenticate("github", {
      headers: new Headers({ authorization: `Bearer ${SECRET}` }),
      url,
      body,
      secret: SECRET,
    })
  );
  assert.deepStrictEqual(e.message.includes("X-Hub-Signature-256"), true);
});

Deno.test("distribution and harbor: Authorization Bearer or bare secret; a URL token is not accepted", () => {
  for (const value of [`Bearer ${SECRET}`, SECRET]) {
    authenticate("distribution", {
      headers: new Headers({ authorization: value }),
      url,
      body,
      secret: SECRET,
    });
    authenticate("harbor", { headers: new Headers({ authorization: value }), url, body, secret: SECRET });
  }
  refused(() =>
    authenticate("harbor", {
      headers: new Headers({ authorization: "Bearer nope" }),
      url,
      body,
      secret: SECRET,
    })
  );
  refused(() =>
    authenticate(
      "distribution",
      { headers: new Headers(), url: new URL(`http://x/?token=${SECRET}`), body, secret: SECRET },
    )
  );
});

Deno.test("dockerhub and quay: ?token= in the URL", () => {
  const ok = new URL(`http://x/webhook/dockerhub?token=${SECRET}`);
  authenticate("dockerhub", { headers: new Headers(), url: ok, body, secret: SECRET });
  authenticate("quay", { headers: new Headers(), url: ok, body, secret: SECRET });
  const e = refused(() => authenticate("dockerhub", { headers: new Headers(), url, body, secret: SECRET }));
  assert.deepStrictEqual(e.message.includes("?token="), true);
  refused(() =>
    authenticate("quay", {
      headers: new Headers(),
      url: new URL("http://x/?token=wrong"),
      body,
      secret: SECRET,
    })
  );
});

Deno.test("secret: from a file (rotation picked up), from a value; short or missing refused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/secret`;
    await Deno.writeTextFile(file, `${SECRET}\n`);
    const s = await WebhookSecret.load({ file });
    assert.deepStrictEqual(await s.current(), SECRET);
    await Deno.writeTextFile(file, "rotated-rotated-rotated");
    // within the refresh period the last read is used; after it, the new content
    assert.deepStrictEqual(await s.current(), SECRET);
    const realNow = Date.now;
    Date.now = () => realNow() + SECRET_REFRESH_MS + 1;
    try {
      assert.deepStrictEqual(await s.current(), "rotated-rotated-rotated");
    } finally {
      Date.now = realNow;
    }
    await assert.rejects(() => WebhookSecret.load({ value: "short" }), {
      name: "WebhookSecretError",
      message: /at\ least\ 16/,
    });
    await assert.rejects(() => WebhookSecret.load({ file: `${dir}/missing` }), {
      name: "WebhookSecretError",
      message: /cannot\ read/,
    });
    await assert.rejects(() => WebhookSecret.load({}), {
      name: "WebhookSecretError",
      message: /\-\-webhook\-secret\-file/,
    });
    assert.deepStrictEqual(await (await WebhookSecret.load({ value: SECRET })).current(), SECRET);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
