/** The Portager release this build is. */
export const VERSION = "0.1.0";

/** The upstream Portager API this build stays compatible with. */
export const UPSTREAM_COMPAT = "v0.5";
