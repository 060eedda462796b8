# Portager's container image: one self-contained binary on distroless, running as non-root.
#
#   docker build -t ghcr.io/portager/portager:0.1.0 .
#
# Stage 1 compiles with the same Deno version tools/deno/package.json pins (a test checks they agree):
# `deno task compile` = `deno bundle --minify --code-splitting` (tree-shaken, split into chunks
# that load on first use, so each command loads only its own code) then `deno compile`, which
# embeds dist/bundle/main.js and every chunk it imports, with the operator's least permissions
# baked in: no write, environment and reads scoped (deno.json, docs/DEPLOY.md "Permissions";
# tests/packaging_test.ts checks they agree; bench/tools_test.ts that every chunk is embedded),
# and its V8 heap flags (--max-semi-space-size=1,--optimize-for-size: docs/DEPLOY.md, "Memory").
FROM denoland/deno:2.9.6 AS builder

# The trust store the binary uses is fixed at compile time. "system" makes it read the
# image's CA file (/etc/ssl/certs/ca-certificates.crt in distroless), and SSL_CERT_FILE
# replaces that file at run time, which the Helm chart's caBundle.mode=replace relies on.
# The builder needs a CA file too, because `deno compile` downloads the runtime over TLS.
ENV DENO_TLS_CA_STORE=system
RUN apt-get update \
  && apt-get install -y --no-install-recommends ca-certificates \
  && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# Dependencies first: this layer stays cached while only the sources change.
COPY deno.json deno.lock ./
RUN deno install --frozen
COPY main.ts ./
COPY src/ ./src/
# The bundle task's last step: the bundle's CommonJS require made lazy, so no command loads
# Deno's Node compatibility layer before it needs it (the script says why).
COPY scripts/bundle_lazy_require.ts ./scripts/
# image/ is the final stage's root: the binary, and /manager as upstream's image names it.
RUN deno task compile && ./dist/portager version \
  && mkdir image && mv dist/portager image/portager && ln -s portager image/manager

# Stage 2: glibc + CA certificates + nonroot user, nothing else (no shell, no package manager).
FROM gcr.io/distroless/cc-debian12:nonroot
ENV DENO_TLS_CA_STORE=system
# glibc's malloc keeps at most two arenas (its default is 8 per CPU the process may run on, whatever the
# pod's limit): the operator's peak syncing 1000 ImageSyncs measured ~10 MiB lower, at the same
# CPU (docs/DEPLOY.md, "Memory: malloc arenas"). glibc reads it at process start only, so it is
# set here for the binary; a container env in the pod spec overrides it. The bench runs the
# bundle with this ENV (bench/tools.ts imageEnv).
ENV MALLOC_ARENA_MAX=2
# One binary, two names (a symlink): /portager and upstream's /manager.
COPY --from=builder /src/image/ /
USER nonroot
ENTRYPOINT ["/portager","run"]
