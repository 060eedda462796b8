/**
 * A temporary folder for a test that `await using` removes, with its contents, when the scope
 * ends — instead of a try/finally around every test that writes files.
 * @module
 */

/** A temporary folder; disposing it removes it recursively. */
export interface TempDir extends AsyncDisposable {
  /** Absolute path of the folder. */
  readonly path: string;
}

/**
 * Creates a temporary folder (`prefix` starts its name):
 * `await using tmp = await tempDir(); await Deno.writeTextFile(`${tmp.path}/a.json`, "{}");`.
 */
export async function tempDir(options: { prefix?: string } = {}): Promise<TempDir> {
  const path = await Deno.makeTempDir(options);
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}
