/**
 * The shared shape of the errors for an ImageSync value that does not parse — a schedule, a
 * semver constraint, a tag pattern — and the view of their parsers the schema's checks take.
 * @module
 */

/**
 * A value that does not parse: `reason` is stable for conditions and Events, `value` is the
 * text as written, and the message says what is wrong and what works.
 */
export abstract class ValueError extends Error {
  /** The stable reason, e.g. "InvalidSchedule". */
  abstract readonly reason: string;
  /** The text that was rejected: the schedule, the constraint or the pattern as written. */
  readonly value: string;

  /** Creates the error for `value` with a message saying what is wrong. */
  constructor(value: string, message: string) {
    super(message);
    this.value = value;
  }
}

/**
 * Why `parse` refuses `text` (the message of the {@linkcode ValueError} it throws), or
 * undefined when it parses; any other error is thrown on.
 */
export function valueProblem(text: string, parse: (text: string) => unknown): string | undefined {
  try {
    parse(text);
    return undefined;
  } catch (e) {
    if (e instanceof ValueError) return e.message;
    throw e;
  }
}
