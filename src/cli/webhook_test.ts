import assert from "node:assert/strict";
import { parseArgs, UsageError } from "./args.ts";
import { WEBHOOK_FLAGS, webhookOptions } from "./webhook.ts";

const noEnv = () => undefined;

Deno.test("webhook flags: off unless an address is given; '0' is off", async () => {
  const off = parseArgs([], WEBHOOK_FLAGS, { env: noEnv });
  assert.equal(await webhookOptions(off.flags, noEnv), undefined);
  const zero = parseArgs(["--webhook-bind-address", "0"], WEBHOOK_FLAGS, { env: noEnv });
  assert.equal(await webhookOptions(zero.flags, noEnv), undefined);
});

Deno.test("webhook flags: the secret from the environment or a file; none or a short one is a usage error", async () => {
  const on = parseArgs(["--webhook-bind-address=:8082"], WEBHOOK_FLAGS, { env: noEnv }).flags;
  const env = (n: string) => n === "PORTAGER_WEBHOOK_SECRET" ? "0123456789abcdef" : undefined;
  const got = await webhookOptions(on, env);
  assert.equal(got?.bindAddress, ":8082");
  assert.equal(await got?.secret.current(), "0123456789abcdef");
  await assert.rejects(webhookOptions(on, noEnv), UsageError);
  await assert.rejects(webhookOptions(on, () => "short"), /at least 16/);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/s`, "from-a-file-0123456789\n");
    const file =
      parseArgs(["--webhook-bind-address=:8082", `--webhook-secret-file=${dir}/s`], WEBHOOK_FLAGS, {
        env: noEnv,
      }).flags;
    assert.equal(await (await webhookOptions(file, env))?.secret.current(), "from-a-file-0123456789");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
