/**
 * The operator's process surface: the `/metrics`, `/healthz`, `/readyz` HTTP servers, and the
 * one server lifecycle (`serveHttp`, with its connection guard) the webhook endpoint shares
 * (the logger lives in src/log, since kube and controller use it too).
 * @module
 */

export * from "./guard.ts";
export * from "./http.ts";
