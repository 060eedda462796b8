/**
 * `portager crd`: print the ImageSync CRD generated from the schema, or with `--write`
 * regenerate the committed copies (deploy/crd.yaml and the Helm chart's crds/).
 * @module
 */
import { crdYaml } from "../api/mod.ts";
import { type FlagSpec, formatFlags, parseArgs } from "./args.ts";

/** Where the generated CRD is committed; a test fails when any copy drifts. */
export const CRD_PATHS = ["deploy/crd.yaml", "charts/portager/crds/imagesyncs.yaml"];

const FLAGS: FlagSpec[] = [
  { name: "write", type: "boolean", help: `write ${CRD_PATHS.join(" and ")} instead of printing` },
  { name: "help", short: "h", type: "boolean", help: "show this help" },
];

/** Runs `portager crd`. */
export async function crdCommand(args: string[]): Promise<number> {
  const { flags } = parseArgs(args, FLAGS);
  if (flags.help) {
    console.log(
      `Usage: portager crd [--write]\n\n${
        formatFlags(FLAGS)
      }\n\nExample:\n  portager crd | kubectl apply -f -`,
    );
    return 0;
  }
  const yaml = crdYaml();
  if (!flags.write) {
    await Deno.stdout.write(new TextEncoder().encode(yaml));
    return 0;
  }
  for (const path of CRD_PATHS) {
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(path, yaml);
    console.error(`wrote ${path}`);
  }
  return 0;
}
