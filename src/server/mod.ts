/**
 * The operator's process surface: the `/metrics`, `/healthz`, `/readyz` HTTP servers (the
 * logger lives in src/log, since kube and controller use it too).
 * @module
 */

export * from "./http.ts";
