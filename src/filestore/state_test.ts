import assert from "node:assert/strict";
import { defaultStatePath, emptyState, readState, specHash, StateFileError, writeState } from "./state.ts";
import { tempDir } from "../../tests/harness/temp_dir.ts";

const SPEC = {
  schedule: "@every 1h",
  source: { registry: "docker.io/library" },
  destination: { registry: "r.example.com", auth: { method: "anonymous" as const } },
  images: [{ name: "nginx", tags: ["1.27"] }],
};

Deno.test("the spec hash ignores key order and changes with content", () => {
  const reordered = {
    images: SPEC.images,
    destination: SPEC.destination,
    source: SPEC.source,
    schedule: SPEC.schedule,
  };
  assert.equal(specHash(SPEC), specHash(reordered));
  assert.notEqual(specHash(SPEC), specHash({ ...SPEC, images: [{ name: "nginx", tags: ["1.28"] }] }));
  assert.match(specHash(SPEC), /^[0-9a-f]{32}$/);
  // the SHA-256 prefix state files written by earlier versions hold: they keep matching
  assert.equal(specHash(SPEC), "80f3c101f723a75e94990748b121724c");
});

Deno.test("state survives a write and a read; a missing file is empty", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  const path = `${dir}/nested/state.json`;
  assert.deepEqual(await readState(path), emptyState());
  const state = emptyState();
  state.imageSyncs["default/a"] = {
    specHash: specHash(SPEC),
    generation: 2,
    file: "a.yaml",
    status: {
      lastSyncTime: "2025-01-01T00:00:00Z",
      nextSyncTime: "2025-01-01T01:00:00Z",
      observedGeneration: 1,
    },
  };
  await writeState(path, state);
  assert.deepEqual(await readState(path), state);
  assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
  assert.deepEqual([...Deno.readDirSync(`${dir}/nested`)].map((e) => e.name), ["state.json"]);
});

Deno.test("a corrupt state file is an error naming the file", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  await Deno.writeTextFile(`${dir}/s.json`, "{not json");
  await assert.rejects(
    readState(`${dir}/s.json`),
    (e) => e instanceof StateFileError && /s\.json: not JSON/.test(e.message),
  );
  await Deno.writeTextFile(`${dir}/s.json`, '{"version": 7}');
  await assert.rejects(readState(`${dir}/s.json`), StateFileError);
});

Deno.test("default state path follows XDG_STATE_HOME", () => {
  assert.equal(defaultStatePath(() => undefined), "./.portager-state.json");
  assert.equal(
    defaultStatePath((n) => (n === "XDG_STATE_HOME" ? "/var/lib/x/" : undefined)),
    "/var/lib/x/portager/state.json",
  );
});
