/**
 * The operator's process surface: structured logging and the `/metrics`, `/healthz`,
 * `/readyz` HTTP server.
 * @module
 */

export * from "./log.ts";
export * from "./http.ts";
