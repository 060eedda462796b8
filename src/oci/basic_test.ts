import assert from "node:assert/strict";
import { basicAuth, basicAuthorization } from "./basic.ts";

Deno.test("basicAuth encodes UTF-8 credentials", () => {
  assert.equal(basicAuth("alice", "secret"), "Basic YWxpY2U6c2VjcmV0");
  assert.equal(basicAuth("jörg", "pä:ss"), `Basic ${btoa("j\xc3\xb6rg:p\xc3\xa4:ss")}`);
});

Deno.test("basicAuthorization answers only for username/password credentials", () => {
  assert.equal(basicAuthorization({ username: "alice", password: "secret" }), "Basic YWxpY2U6c2VjcmV0");
  assert.equal(basicAuthorization({ identityToken: "t" }), undefined);
  assert.equal(basicAuthorization({ registryToken: "t" }), undefined);
  assert.equal(basicAuthorization(undefined), undefined);
});
