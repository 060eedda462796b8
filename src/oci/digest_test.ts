import assert from "node:assert/strict";
import {
  hashHex,
  isDigestAlgorithm,
  preloadStreamingHash,
  sha256Hex,
  streamingHash,
  streamingHashLoaded,
  webHashHex,
} from "./digest.ts";

const abc = new TextEncoder().encode("abc");
const ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const ABC_SHA512 = "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a" +
  "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f";

Deno.test("hashHex, webHashHex and streamingHash give the standard SHA-256 and SHA-512 (FIPS 180-2 'abc')", async () => {
  assert.equal(hashHex("sha256", abc), ABC_SHA256);
  assert.equal(hashHex("sha512", abc), ABC_SHA512);
  assert.equal(await webHashHex("sha256", abc), ABC_SHA256);
  assert.equal(await webHashHex("sha512", abc), ABC_SHA512);
  for (const [algorithm, want] of [["sha256", ABC_SHA256], ["sha512", ABC_SHA512]] as const) {
    const h = await streamingHash(algorithm);
    h.update(abc.subarray(0, 1));
    h.update(abc.subarray(1));
    assert.equal(h.hex(), want);
  }
});

Deno.test("the three ways agree on multi-block input; a string is hashed as UTF-8", async () => {
  const data = new Uint8Array(300_001).map((_, i) => (i * 131 + (i >> 8)) & 0xff);
  for (const algorithm of ["sha256", "sha512"] as const) {
    const h = await streamingHash(algorithm);
    for (let at = 0; at < data.length; at += 65_536) h.update(data.subarray(at, at + 65_536));
    const streamed = h.hex();
    assert.equal(hashHex(algorithm, data), streamed);
    assert.equal(await webHashHex(algorithm, data), streamed);
  }
  assert.equal(sha256Hex("héllo"), hashHex("sha256", new TextEncoder().encode("héllo")));
  assert.equal(sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
});

Deno.test("isDigestAlgorithm names sha256 and sha512 only", () => {
  assert(isDigestAlgorithm("sha256") && isDigestAlgorithm("sha512"));
  assert(!isDigestAlgorithm("md5") && !isDigestAlgorithm("SHA256") && !isDigestAlgorithm(""));
});

Deno.test("preloadStreamingHash loads the streaming hash: streamingHashLoaded says so", async () => {
  await preloadStreamingHash();
  assert.equal(streamingHashLoaded(), true);
});
