/**
 * Helpers of the supply-chain tests: attaching a referrer with the real `oras` CLI, and
 * checking a metrics exposition with promtool.
 * @module
 */
import { oras } from "./oci_cli.ts";

/**
 * Attaches `content` (JSON-encoded unless a string) to `subject` as an `artifactType` referrer
 * with `oras attach` (plain HTTP, for the loopback registries); returns the referrer's digest.
 * The file is written in `dir`.
 */
export async function orasAttach(
  dir: string,
  subject: string,
  opts: { artifactType: string; content: unknown },
): Promise<string> {
  const file = `${crypto.randomUUID()}.json`;
  const { artifactType, content } = opts;
  await Deno.writeTextFile(`${dir}/${file}`, typeof content === "string" ? content : JSON.stringify(content));
  const { stdout } = await oras(
    [
      "attach",
      "--plain-http",
      "--artifact-type",
      artifactType,
      "--format",
      "json",
      subject,
      `${file}:${artifactType}`,
    ],
    { cwd: dir, check: true },
  );
  return (JSON.parse(stdout) as { digest: string }).digest;
}

/** Runs `promtool check metrics` on an exposition; its exit code and output. */
export async function promtoolCheckMetrics(text: string): Promise<{ code: number; output: string }> {
  const child = new Deno.Command("/usr/bin/promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, output: dec.decode(out.stdout) + dec.decode(out.stderr) };
}
