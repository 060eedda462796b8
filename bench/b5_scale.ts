import type { BenchContext, CaseResult } from "./context.ts";
export function runB5(_ctx: BenchContext): Promise<CaseResult[]> {
  throw new Error("todo");
}
