import assert from "node:assert/strict";
import { createLogger, parseLogLevel, redact, redactString } from "./mod.ts";

function capture(format: "json" | "text", level: "debug" | "info" = "info") {
  const lines: string[] = [];
  const log = createLogger({
    format,
    level,
    write: (l) => lines.push(l),
    now: () => new Date("2025-01-02T03:04:05Z"),
  });
  return { log, lines };
}

Deno.test("json logs carry time, level, msg and bound fields", () => {
  const { log, lines } = capture("json");
  log.child({ imagesync: "ns/a" }).info("synced", { tags: 3 });
  log.debug("hidden");
  assert.equal(lines.length, 1);
  assert.deepEqual(JSON.parse(lines[0]), {
    time: "2025-01-02T03:04:05.000Z",
    level: "info",
    msg: "synced",
    imagesync: "ns/a",
    tags: 3,
  });
});

Deno.test("text logs are key=value", () => {
  const { log, lines } = capture("text", "debug");
  log.warn("slow registry", { registry: "ghcr.io", note: "took a while" });
  assert.equal(lines[0], '2025-01-02T03:04:05.000Z WARN  slow registry registry=ghcr.io note="took a while"');
});

Deno.test("credentials never reach a log line", () => {
  const { log, lines } = capture("json");
  log.error("request failed", {
    password: "hunter2",
    headers: new Headers({ authorization: "Basic dXNlcjpodW50ZXIy" }),
    url: "https://bob:hunter2@registry.example/v2/",
    detail: "got Bearer abc.def.ghi-secret-token from realm",
    config: { auths: { "r.example": { auth: "Ym9iOmh1bnRlcjI=" } } },
    error: new Error("token=s3cr3t rejected"),
  });
  const line = lines.join("\n");
  for (
    const secret of ["hunter2", "dXNlcjpodW50ZXIy", "abc.def.ghi-secret-token", "Ym9iOmh1bnRlcjI=", "s3cr3t"]
  ) {
    assert.ok(!line.includes(secret), `${secret} leaked: ${line}`);
  }
  assert.match(line, /bob:\[REDACTED\]@registry\.example/);
});

Deno.test("redaction keeps ordinary values", () => {
  assert.equal(
    redactString("secret default/creds has no auth for registry ghcr.io"),
    "secret default/creds has no auth for registry ghcr.io",
  );
  assert.deepEqual(redact({ secretRef: { name: "creds" }, tags: ["1.0"] }), {
    secretRef: { name: "creds" },
    tags: ["1.0"],
  });
  assert.equal(parseLogLevel("WARNING"), "warn");
  assert.throws(() => parseLogLevel("loud"), RangeError);
});
