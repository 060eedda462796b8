/**
 * The `portager` command line: `run`, `sync`, `serve`, `crd`, `version`.
 * Each command module is imported only when used, so `portager sync` never loads the
 * Kubernetes client and `portager crd` loads neither the client nor the copier.
 * @module
 */
import { UsageError } from "./args.ts";
import { UPSTREAM_COMPAT, VERSION } from "./version.ts";

/** Exit codes shared by every command. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

const USAGE = `portager ${VERSION} — declaratively sync container images between OCI registries

Usage:
  portager run [flags]          the operator: watch ImageSyncs in a cluster (in-cluster or --kubeconfig);
                                \`portager --flag …\` is \`portager run --flag …\` (upstream's command line)
  portager sync -f PATH [flags] run the ImageSync(s) in PATH once, no cluster; --dry-run prints the plan
  portager serve -f DIR [flags] keep the ImageSyncs in DIR on their schedules, no cluster
  portager crd [--write]        print the ImageSync CRD generated from the schema
  portager version              print the version

Run 'portager COMMAND --help' for the flags of a command.
No cluster at hand? 'deno task demo' starts a local apiserver and two registries and shows an
ImageSync going Ready; 'portager sync -f' works with no cluster at all.`;

type Command = (args: string[]) => Promise<number>;

/** The commands with flags, each imported only when used. */
const COMMANDS = new Map<string, () => Promise<Command>>([
  ["crd", async () => (await import("./crd.ts")).crdCommand],
  ["run", async () => (await import("./run.ts")).runCommand],
  ["sync", async () => (await import("./sync.ts")).syncCommand],
  ["serve", async () => (await import("./serve.ts")).serveCommand],
]);

/** Runs the command line `args` and returns the process exit code. */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  try {
    switch (command) {
      case undefined:
      case "help":
      case "-h":
      case "--help":
        console.log(USAGE);
        return command === undefined ? EXIT.usage : EXIT.ok;
      case "version":
      case "--version":
        console.log(
          `portager ${VERSION} (ImageSync portager.portager.io/v1alpha1, compatible with upstream ${UPSTREAM_COMPAT}; deno ${Deno.version.deno})`,
        );
        return EXIT.ok;
      default: {
        // upstream's image runs `/manager --leader-elect …`: flags alone mean `run`
        if (command.startsWith("-")) return await (await COMMANDS.get("run")!())(args);
        const load = COMMANDS.get(command);
        if (!load) throw new UsageError(`unknown command "${command}"; run 'portager --help'`);
        return await (await load())(rest);
      }
    }
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`portager: ${err.message}`);
      return EXIT.usage;
    }
    throw err;
  }
}
