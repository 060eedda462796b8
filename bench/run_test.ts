import assert from "node:assert/strict";
import { spliceResults } from "./run.ts";

Deno.test("spliceResults replaces only the text between the markers", () => {
  const doc = "# P\n\nintro\n\n<!-- bench:results:begin -->\nold\n<!-- bench:results:end -->\n\n## How\n";
  assert.deepEqual(
    spliceResults(doc, "new table\n"),
    "# P\n\nintro\n\n<!-- bench:results:begin -->\n\nnew table\n\n<!-- bench:results:end -->\n\n## How\n",
  );
});

Deno.test("spliceResults appends a marked block when the markers are missing", () => {
  assert.deepEqual(
    spliceResults("# P\n", "t"),
    "# P\n\n<!-- bench:results:begin -->\n\nt\n\n<!-- bench:results:end -->\n",
  );
});
