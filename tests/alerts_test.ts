/**
 * The chart's alerts (templates/prometheusrule.yaml) and Grafana dashboard (dashboards/portager.json),
 * checked with promtool against the series the operator really exports:
 *
 * - the series catalog is read from a real `Metrics` registry's exposition (src/metrics), so a renamed
 *   metric or label fails here;
 * - every rule and dashboard query parses (`promtool check rules`) and names only exported series
 *   (plus Prometheus's own `up`);
 * - each alert fires, and only fires, on series shaped as Prometheus stores them after scraping the
 *   chart's ServiceMonitor (`promtool test rules`).
 * @module
 */

import assert from "node:assert/strict";
import yaml from "js-yaml";
import { createMetrics } from "../src/metrics/mod.ts";
import { helmTemplate, type RenderedObject } from "./harness/helm.ts";

const ROOT = new URL("../", import.meta.url);
const CHART = new URL("charts/portager", ROOT).pathname;
const PROMTOOL = "/usr/bin/promtool";

/** Labels Prometheus-operator's scrape adds (the operator's `namespace` becomes `exported_namespace`). */
const TARGET_LABELS = ["job", "instance", "namespace", "pod", "service", "endpoint", "container"];

/** Series Prometheus makes itself, which rules may read. */
const PROMETHEUS_SERIES = new Map([["up", new Set<string>()]]);

/** Metric name → label names, from the exposition of a registry that has seen every kind of event. */
async function exportedSeries(): Promise<Map<string, Set<string>>> {
  const metrics = createMetrics();
  metrics.observeSync({
    namespace: "team-a",
    name: "mirror",
    status: "failure",
    durationSeconds: 3,
    imagesCopied: 1,
    imagesSkipped: 1,
    imagesFailed: 1,
    total: 3,
    synced: 2,
    bytesCopied: 10,
    blobsMounted: 1,
    blobsSkipped: 1,
    imagesVerified: 1,
    validationFailed: { cosign: 1 },
    tags: [{
      source: "docker.io/library/alpine",
      destination: "r.example/alpine",
      tag: "3",
      digest: "sha256:x",
    }],
  });
  metrics.observeRetry("team-a", "mirror", { kind: "registry" });
  metrics.observeStartFailure("team-a", "mirror", "AuthFailed");
  metrics.observeSchedule("team-a", "mirror", { intervalSeconds: 3600, lastSuccess: new Date() });
  metrics.queueDepth.set(1);
  metrics.isLeader.set(1);
  metrics.watchRateLimits(() => [{ registry: "registry-1.docker.io", remaining: 3 }]);
  metrics.webhookRequests.inc({ source: "distribution", result: "accepted" });
  const series = new Map<string, Set<string>>();
  for (const line of (await metrics.expose()).split("\n")) {
    const m = line.match(/^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? /);
    if (!m) continue;
    const labels = series.get(m[1]) ?? new Set<string>();
    for (const pair of (m[2] ?? "").matchAll(/([a-zA-Z_]\w*)="/g)) labels.add(pair[1]);
    series.set(m[1], labels);
  }
  assert.ok(series.has("portage_sync_total") && series.has("portage_sync_duration_seconds_bucket"));
  return series;
}

/**
 * The metric names a PromQL expression reads: identifiers outside strings, label matchers, range
 * selectors and grouping clauses that are not functions, keywords or numbers.
 */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ")
    .replace(/\boffset\s+\w+/g, " ");
  const keywords = new Set(["and", "or", "unless", "bool", "inf", "nan"]);
  const names = new Set<string>();
  for (const m of stripped.matchAll(/(?<![\w:.])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()/g)) {
    if (!keywords.has(m[1].toLowerCase())) names.add(m[1]);
  }
  return [...names].sort();
}

Deno.test("metricNames: finds selectors, not functions, labels, grouping or durations", () => {
  assert.deepEqual(
    metricNames(
      'sum by (le, name) (rate(a_total{job=~"x",kind="registry"}[5m])) / on (name) group_left (b) b offset 1h ' +
        "> bool 0.5 unless absent(up == 1)",
    ),
    ["a_total", "b", "up"],
  );
});

async function promtool(args: string[], cwd: string): Promise<{ ok: boolean; output: string }> {
  const out = await new Deno.Command(PROMTOOL, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { ok: out.success, output: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

/** Each expression names only exported series, and its labels are ones those series carry. */
function assertReadsExportedSeries(expr: string, exported: Map<string, Set<string>>): void {
  for (const name of metricNames(expr)) {
    assert.ok(exported.has(name) || PROMETHEUS_SERIES.has(name), `${name} is not exported (in: ${expr})`);
  }
}

async function renderedRules(values: Record<string, unknown> = {}): Promise<RenderedObject> {
  const objects = await helmTemplate(CHART, { values: [{ prometheusRule: { enabled: true }, ...values }] });
  const rules = objects.filter((o) => o.kind === "PrometheusRule");
  assert.equal(rules.length, 1);
  return rules[0];
}

// deno-lint-ignore no-explicit-any
type Rule = { alert: string; expr: string; for: string; labels: Record<string, string>; annotations: any };

/** Series as Prometheus stores them after scraping the chart's ServiceMonitor (release "portager"). */
function scraped(metric: string, labels: Record<string, string>): string {
  const all = {
    job: "portager-metrics-service",
    namespace: "portager-system",
    instance: "10.0.0.7:8443",
    ...labels,
  };
  return `${metric}{${Object.entries(all).map(([k, v]) => `${k}="${v}"`).join(",")}}`;
}

/** Checks each input series of the promtool tests against the exported catalog. */
function assertRealSeries(series: string, exported: Map<string, Set<string>>): void {
  const m = series.match(/^([\w:]+)\{(.*)\}$/)!;
  const labels = exported.get(m[1]) ?? PROMETHEUS_SERIES.get(m[1]);
  assert.ok(labels, `${m[1]} is not a series the operator exports`);
  for (const [, label] of m[2].matchAll(/(\w+)="/g)) {
    const operatorLabel = label === "exported_namespace" ? "namespace" : label;
    assert.ok(
      labels.has(operatorLabel) || TARGET_LABELS.includes(label),
      `${m[1]} has no label ${label} (it has ${[...labels].join(", ")})`,
    );
  }
}

Deno.test("PrometheusRule: every alert parses, reads only exported series, and fires exactly when it should (promtool test rules)", async () => {
  const exported = await exportedSeries();
  const rule = await renderedRules();
  assert.equal(rule.metadata.name, "portager-alerts");
  const rules = rule.spec.groups[0].rules as Rule[];
  assert.deepEqual(rules.map((r) => r.alert), [
    "PortagerSyncFailing",
    "PortagerSyncStale",
    "PortagerValidationFailing",
    "PortagerDown",
    "PortagerRateLimitExhausted",
    "PortagerRegistryThrottling",
  ]);
  for (const r of rules) assertReadsExportedSeries(r.expr, exported);
  const annotations = (alert: string, labels: Record<string, string>, value = "") => {
    const out: Record<string, string> = {};
    const r = rules.find((x) => x.alert === alert)!;
    for (const [k, v] of Object.entries(r.annotations as Record<string, string>)) {
      out[k] = v.replace(/\{\{ \$labels\.(\w+) \}\}/g, (_, l) => labels[l])
        .replace(/\{\{ \$value( \| humanize\w*)? \}\}/g, value);
    }
    return out;
  };

  const ns = { exported_namespace: "team-a" };
  const input: Array<{ series: string; values: string }> = [
    // failing: failures, no success; flaky: failures and successes; healthy: successes only
    {
      series: scraped("portage_sync_total", { ...ns, name: "broken", status: "failure" }),
      values: "0+1x600",
    },
    { series: scraped("portage_sync_total", { ...ns, name: "flaky", status: "failure" }), values: "0+1x600" },
    { series: scraped("portage_sync_total", { ...ns, name: "flaky", status: "success" }), values: "0+1x600" },
    {
      series: scraped("portage_sync_total", { ...ns, name: "healthy", status: "success" }),
      values: "0+1x600",
    },
    // start failures (AuthFailed: outside portage_sync_total): "locked" only fails to start; "healthy"
    // also had one but its syncs succeed
    {
      series: scraped("portage_sync_start_failures_total", { ...ns, name: "locked", reason: "AuthFailed" }),
      values: "0+1x600",
    },
    {
      series: scraped("portage_sync_start_failures_total", { ...ns, name: "healthy", reason: "AuthFailed" }),
      values: "0+1x600",
    },
    // last success (Unix seconds; promtool's clock starts at 0) and schedule interval:
    // "stale" (hourly) last succeeded at 0; "fresh" (hourly) succeeds every minute; "frequent" (every
    // minute) last succeeded at 0, alerting only after minSeconds (1h); "daily" last succeeded at 0;
    // "handover" has a stale series from a former leader (another instance) and a fresh one from the new
    ...[
      ["stale", "3600", "0x600"],
      ["fresh", "3600", "0+60x600"],
      ["frequent", "60", "0x600"],
      ["daily", "86400", "0x600"],
      ["handover", "3600", "0+60x600"],
    ].flatMap(([name, interval, last]) => [
      { series: scraped("portager_schedule_interval_seconds", { ...ns, name }), values: `${interval}x600` },
      { series: scraped("portager_last_success_timestamp_seconds", { ...ns, name }), values: last },
    ]),
    {
      series: scraped("portager_last_success_timestamp_seconds", {
        ...ns,
        name: "handover",
        instance: "10.0.0.8:8443",
      }),
      values: "0x600",
    },
    {
      series: scraped("portager_schedule_interval_seconds", {
        ...ns,
        name: "handover",
        instance: "10.0.0.8:8443",
      }),
      values: "3600x600",
    },
    // validation: one cosign refusal a minute for "signed"
    {
      series: scraped("portage_images_validation_failed_total", { ...ns, name: "signed", gate: "cosign" }),
      values: "0+1x600",
    },
    // retries: 6 a minute (0.1/s) against registries for "throttled"; reconcile retries do not count
    {
      series: scraped("portage_retries_total", { ...ns, name: "throttled", kind: "registry" }),
      values: "0+6x600",
    },
    {
      series: scraped("portage_retries_total", { ...ns, name: "healthy", kind: "reconcile" }),
      values: "0+6x600",
    },
    // Docker Hub's budget runs out at 5m and stays out; another registry keeps some
    {
      series: scraped("portager_registry_ratelimit_remaining", { registry: "registry-1.docker.io" }),
      values: "100 50 10 5 1 0x30",
    },
    {
      series: scraped("portager_registry_ratelimit_remaining", { registry: "ghcr.io" }),
      values: "500x35",
    },
    // the operator answers scrapes for 10 minutes, then not
    {
      series: 'up{job="portager-metrics-service",namespace="portager-system",instance="10.0.0.7:8443"}',
      values: "1x10 0x600",
    },
  ];
  for (const s of input) assertRealSeries(s.series, exported);

  const broken = { alertname: "PortagerSyncFailing", severity: "warning", ...ns, name: "broken" };
  const locked = { ...broken, name: "locked" };
  const stale = { alertname: "PortagerSyncStale", severity: "warning", ...ns, name: "stale" };
  const frequent = { ...stale, name: "frequent" };
  const validation = {
    alertname: "PortagerValidationFailing",
    severity: "warning",
    ...ns,
    name: "signed",
    gate: "cosign",
  };
  const down = {
    alertname: "PortagerDown",
    severity: "critical",
    namespace: "portager-system",
  };
  const exhausted = {
    alertname: "PortagerRateLimitExhausted",
    severity: "warning",
    registry: "registry-1.docker.io",
  };
  const throttled = {
    alertname: "PortagerRegistryThrottling",
    severity: "warning",
    ...ns,
    name: "throttled",
  };
  const strip = ({ alertname: _, severity: __, ...rest }: Record<string, string>) => rest;
  const tests = {
    rule_files: ["rules.yaml"],
    evaluation_interval: "1m",
    tests: [{
      interval: "1m",
      input_series: input,
      alert_rule_test: [
        // pending for 15m first
        { eval_time: "10m", alertname: "PortagerSyncFailing", exp_alerts: [] },
        // broken (failures) and locked (start failures only); not flaky or healthy (they also succeed)
        {
          eval_time: "40m",
          alertname: "PortagerSyncFailing",
          exp_alerts: [broken, locked].map((a) => ({
            exp_labels: a,
            exp_annotations: annotations("PortagerSyncFailing", strip(a)),
          })),
        },
        // stale after 3 intervals (3h), frequent after minSeconds (1h); daily not before 3 days; fresh
        // and handover (the newest last success of any instance counts) never
        { eval_time: "50m", alertname: "PortagerSyncStale", exp_alerts: [] },
        {
          eval_time: "70m",
          alertname: "PortagerSyncStale",
          exp_alerts: [{
            exp_labels: frequent,
            exp_annotations: annotations("PortagerSyncStale", strip(frequent), "1h 10m 0s"),
          }],
        },
        {
          eval_time: "179m",
          alertname: "PortagerSyncStale",
          exp_alerts: [{
            exp_labels: frequent,
            exp_annotations: annotations("PortagerSyncStale", strip(frequent), "2h 59m 0s"),
          }],
        },
        {
          eval_time: "190m",
          alertname: "PortagerSyncStale",
          exp_alerts: [frequent, stale].map((a) => ({
            exp_labels: a,
            exp_annotations: annotations("PortagerSyncStale", strip(a), "3h 10m 0s"),
          })),
        },
        {
          eval_time: "40m",
          alertname: "PortagerValidationFailing",
          exp_alerts: [{
            exp_labels: validation,
            exp_annotations: annotations("PortagerValidationFailing", strip(validation), "30"),
          }],
        },
        { eval_time: "9m", alertname: "PortagerDown", exp_alerts: [] },
        // down since 11m; firing after 5m more
        { eval_time: "14m", alertname: "PortagerDown", exp_alerts: [] },
        {
          eval_time: "20m",
          alertname: "PortagerDown",
          exp_alerts: [{ exp_labels: down, exp_annotations: annotations("PortagerDown", strip(down)) }],
        },
        // out of budget since 5m: pending for 5m
        { eval_time: "8m", alertname: "PortagerRateLimitExhausted", exp_alerts: [] },
        {
          eval_time: "12m",
          alertname: "PortagerRateLimitExhausted",
          exp_alerts: [{
            exp_labels: exhausted,
            exp_annotations: annotations("PortagerRateLimitExhausted", strip(exhausted), "0"),
          }],
        },
        {
          eval_time: "40m",
          alertname: "PortagerRegistryThrottling",
          exp_alerts: [{
            exp_labels: throttled,
            exp_annotations: annotations("PortagerRegistryThrottling", strip(throttled), "100m"),
          }],
        },
      ],
    }, {
      // no target at all (e.g. the Deployment scaled to 0): down too
      interval: "1m",
      input_series: [],
      alert_rule_test: [{
        eval_time: "10m",
        alertname: "PortagerDown",
        exp_alerts: [{ exp_labels: down, exp_annotations: annotations("PortagerDown", strip(down)) }],
      }],
    }],
  };
  const dir = await Deno.makeTempDir({ prefix: "portager-alerts-" });
  try {
    await Deno.writeTextFile(`${dir}/rules.yaml`, yaml.dump({ groups: rule.spec.groups }));
    await Deno.writeTextFile(`${dir}/tests.yaml`, yaml.dump(tests));
    const check = await promtool(["check", "rules", "rules.yaml"], dir);
    assert.ok(check.ok, check.output);
    const run = await promtool(["test", "rules", "tests.yaml"], dir);
    assert.ok(run.ok, run.output);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("PrometheusRule: values choose windows, severities, labels and the namespace label; disabled alerts are left out", async () => {
  const rule = await renderedRules({
    prometheusRule: {
      enabled: true,
      namespaceLabel: "namespace",
      job: "portager",
      alertLabels: { team: "platform" },
      syncStale: { intervals: 5, minSeconds: 600 },
      operatorDown: { enabled: false },
    },
  });
  const rules = rule.spec.groups[0].rules as Rule[];
  assert.ok(!rules.some((r) => r.alert === "PortagerDown"));
  const stale = rules.find((r) => r.alert === "PortagerSyncStale")!;
  assert.match(
    stale.expr,
    /clamp_min\(5 \* max by \(namespace, name\) \(portager_schedule_interval_seconds\{job="portager"\}\), 600\)/,
  );
  assert.match(stale.expr, /max by \(namespace, name\) \(portager_last_success_timestamp_seconds/);
  assert.match(stale.expr, /job="portager"/);
  assert.deepEqual(stale.labels, { severity: "warning", team: "platform" });
});

Deno.test("Grafana dashboard: every query parses (promtool) and reads only series the operator exports", async () => {
  const exported = await exportedSeries();
  const objects = await helmTemplate(CHART, { values: [{ dashboard: { enabled: true } }] });
  const cm = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === "portager-dashboard")!;
  const dashboard = JSON.parse(cm.data["portager.json"]);
  assert.deepEqual(
    dashboard,
    JSON.parse(await Deno.readTextFile(new URL("charts/portager/dashboards/portager.json", ROOT))),
  );
  const exprs: string[] = [];
  for (const panel of dashboard.panels) {
    for (const target of panel.targets ?? []) exprs.push(target.expr);
  }
  for (const v of dashboard.templating.list) {
    if (v.type !== "query") continue;
    const m = (v.query as string).match(/^label_values\((.*),\s*[$\w]+\)$/);
    assert.ok(m, `variable ${v.name}: ${v.query}`);
    exprs.push(m[1]);
  }
  assert.ok(exprs.length >= 15, `${exprs.length} queries`);
  // Grafana's variables, as Grafana substitutes them
  const substitute = (e: string) =>
    e.replaceAll("$__rate_interval", "5m").replaceAll("$__range", "1d").replaceAll(
      "$ns_label",
      "exported_namespace",
    )
      .replaceAll("$job", ".*").replaceAll("$namespace", ".*").replaceAll("$name", ".*");
  const queries = exprs.map(substitute);
  for (const q of queries) {
    assert.ok(!q.includes("$"), `unsubstituted variable in ${q}`);
    assertReadsExportedSeries(q, exported);
  }
  const dir = await Deno.makeTempDir({ prefix: "portager-dashboard-" });
  try {
    const rules = {
      groups: [{ name: "dashboard", rules: queries.map((expr, i) => ({ record: `dashboard:q${i}`, expr })) }],
    };
    await Deno.writeTextFile(`${dir}/queries.yaml`, yaml.dump(rules));
    const check = await promtool(["check", "rules", "queries.yaml"], dir);
    assert.ok(check.ok, check.output);
    assert.match(check.output, new RegExp(`SUCCESS: ${queries.length} rules found`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
