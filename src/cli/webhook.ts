/**
 * The webhook flags of `run` and `serve`, and what they turn into: off unless
 * `--webhook-bind-address` is set; the shared secret from `--webhook-secret-file` (a mounted
 * Secret, re-read on rotation) or `PORTAGER_WEBHOOK_SECRET` (never a flag, so it stays out of
 * the process list).
 * @module
 */

import type { ManagerWebhookOptions } from "../controller/manager.ts";
import { WebhookSecret, WebhookSecretError } from "../webhook/mod.ts";
import type { FlagSpec } from "./args.ts";
import { UsageError } from "./args.ts";

/** Environment variable holding the shared secret when no file is given. */
export const WEBHOOK_SECRET_ENV = "PORTAGER_WEBHOOK_SECRET";

/** The flags, for both long-running commands. */
export const WEBHOOK_FLAGS: FlagSpec[] = [
  {
    name: "webhook-bind-address",
    type: "string",
    env: "PORTAGER_WEBHOOK_BIND_ADDRESS",
    help: 'listen address of the push-notification endpoint /webhook/<source>, e.g. ":8082" (default off)',
  },
  {
    name: "webhook-secret-file",
    type: "string",
    env: "PORTAGER_WEBHOOK_SECRET_FILE",
    help: `file holding the webhook's shared secret (else $${WEBHOOK_SECRET_ENV})`,
  },
];

/** The webhook settings from parsed flags; undefined when the endpoint is off. */
export async function webhookOptions(
  flags: Record<string, unknown>,
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): Promise<ManagerWebhookOptions | undefined> {
  const bindAddress = (flags["webhook-bind-address"] as string | undefined) ?? "";
  if (bindAddress === "" || bindAddress === "0") return undefined;
  try {
    const secret = await WebhookSecret.load({
      file: flags["webhook-secret-file"] as string | undefined,
      value: env(WEBHOOK_SECRET_ENV),
    });
    return { bindAddress, secret };
  } catch (err) {
    if (err instanceof WebhookSecretError) throw new UsageError(err.message);
    throw err;
  }
}
