/**
 * Caps on what a status may say: condition messages at the CRD's limit, per-tag messages at
 * the Events' cap, and all per-tag messages of one status within a shared budget, so a
 * registry's long error bodies or thousands of failing tags never make a status unwritable.
 * @module
 */

import type { ImageSyncStatus } from "../api/mod.ts";

/** Longest condition message written: the CRD's (metav1.Condition's) maxLength. */
export const MAX_CONDITION_MESSAGE = 32 * 1024;
/** Longest per-tag `error` / `validationError` written, as Events are capped (src/kube/events.ts). */
export const MAX_TAG_MESSAGE = 1024;
/**
 * Characters all per-tag messages of one status may take together: with more tags than fit at
 * {@linkcode MAX_TAG_MESSAGE}, each gets an equal share (at least {@linkcode MIN_TAG_MESSAGE}), so
 * the messages of thousands of failing tags stay a small part of etcd's 1.5 MiB object limit.
 */
export const MAX_TAG_MESSAGES_TOTAL = 256 * 1024;
/** The smallest share of {@linkcode MAX_TAG_MESSAGES_TOTAL} a tag's message is cut to. */
export const MIN_TAG_MESSAGE = 128;
/** What ends a message cut to its cap. */
export const TRUNCATED_MARKER = "… (truncated)";

/**
 * `text` cut to `max` characters (UTF-16 units, so never more code points) ending in
 * {@linkcode TRUNCATED_MARKER}; as is when it fits. A registry's error body can be 64 KiB.
 */
export function capMessage(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = Math.max(0, max - TRUNCATED_MARKER.length);
  // never leave half of a surrogate pair
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return text.slice(0, end) + TRUNCATED_MARKER;
}

/**
 * Status with every message a registry or user can make long capped: condition messages at
 * {@linkcode MAX_CONDITION_MESSAGE} (more is refused by the apiserver, so the status would never
 * be written), per-tag `error` and `validationError` at {@linkcode MAX_TAG_MESSAGE}, less when
 * many tags share {@linkcode MAX_TAG_MESSAGES_TOTAL}.
 */
export function capStatusMessages(status: Partial<ImageSyncStatus>): Partial<ImageSyncStatus> {
  const out = { ...status };
  if (status.conditions) {
    out.conditions = status.conditions.map((c) =>
      c.message.length > MAX_CONDITION_MESSAGE
        ? { ...c, message: capMessage(c.message, MAX_CONDITION_MESSAGE) }
        : c
    );
  }
  if (status.images) {
    const messages = status.images.flatMap((i) => i.tags ?? [])
      .reduce((n, t) => n + (t.error ? 1 : 0) + (t.validationError ? 1 : 0), 0);
    const cap = Math.max(
      MIN_TAG_MESSAGE,
      Math.min(MAX_TAG_MESSAGE, Math.floor(MAX_TAG_MESSAGES_TOTAL / Math.max(1, messages))),
    );
    out.images = status.images.map((image) => ({
      ...image,
      tags: image.tags?.map((t) => {
        const tag = { ...t };
        if (tag.error !== undefined) tag.error = capMessage(tag.error, cap);
        if (tag.validationError !== undefined) tag.validationError = capMessage(tag.validationError, cap);
        return tag;
      }),
    }));
  }
  return out;
}
