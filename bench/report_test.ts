import assert from "node:assert/strict";
import { markdownCase, markdownTable } from "./report.ts";

Deno.test("markdownTable right-aligns all but the first column and escapes pipes", () => {
  assert.deepEqual(
    markdownTable({ columns: ["program", "time"], rows: [["a|b", "1.00 s"]] }),
    "| program | time |\n| --- | ---: |\n| a\\|b | 1.00 s |",
  );
});

Deno.test("markdownCase: heading, tables, then notes as a list", () => {
  const md = markdownCase({
    id: "B9",
    title: "Example",
    tables: [{ columns: ["x"], rows: [["1"]] }],
    notes: ["one note"],
    data: {},
  });
  assert.deepEqual(md, "### B9 — Example\n\n| x |\n| --- |\n| 1 |\n\n- one note");
});
