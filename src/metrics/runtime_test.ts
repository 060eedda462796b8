import assert from "node:assert/strict";
import { createMetrics } from "./mod.ts";
import { runtimeMetrics } from "./runtime.ts";
import { promtoolCheckMetrics } from "../../tests/harness/supply_chain.ts";

Deno.test("runtime metrics: controller-runtime's names, labels and results; one set per registry", async () => {
  const m = createMetrics();
  const r = runtimeMetrics(m.registry);
  assert.equal(runtimeMetrics(m.registry), r, "a second manager on the registry shares the series");
  r.setMaxConcurrent(2);
  r.setLeader("c8073f84.portager.io", true);
  r.restRequest("10.0.0.1:443", "patch", 409);
  r.restRequest("10.0.0.1:443", "GET", "<error>");
  r.reconcileStarted()("requeue_after");
  r.reconcileStarted()("error");
  r.reconcileStarted()("error", { thrown: new TypeError("a bug") }); // a panic, and an error
  r.reconcileStarted()("error", { thrown: Object.assign(new Error("409"), { reason: "Conflict" }) });
  r.reconcileStarted()("error", { timedOut: true });
  const q = r.queueHooks();
  q.added();
  q.retried();
  q.waited(0.002);
  q.worked(1.5);
  r.watchInFlight(() => [3, 4]);
  r.setDepth(3);
  const text = await m.expose();
  for (
    const line of [
      'controller_runtime_reconcile_total{controller="imagesync",result="success"} 0',
      'controller_runtime_reconcile_total{controller="imagesync",result="requeue_after"} 1',
      'controller_runtime_reconcile_total{controller="imagesync",result="error"} 4',
      'controller_runtime_reconcile_errors_total{controller="imagesync"} 4',
      'controller_runtime_reconcile_panics_total{controller="imagesync"} 1',
      'controller_runtime_terminal_reconcile_errors_total{controller="imagesync"} 0',
      'controller_runtime_reconcile_timeouts_total{controller="imagesync"} 1',
      'controller_runtime_reconcile_time_seconds_count{controller="imagesync"} 5',
      'controller_runtime_active_workers{controller="imagesync"} 0',
      'controller_runtime_max_concurrent_reconciles{controller="imagesync"} 2',
      'workqueue_depth{name="imagesync",controller="imagesync",priority="0"} 3',
      'workqueue_adds_total{name="imagesync",controller="imagesync"} 1',
      'workqueue_retries_total{name="imagesync",controller="imagesync"} 1',
      'workqueue_queue_duration_seconds_bucket{le="0.01",name="imagesync",controller="imagesync"} 1',
      'workqueue_work_duration_seconds_bucket{le="1",name="imagesync",controller="imagesync"} 0',
      'workqueue_unfinished_work_seconds{name="imagesync",controller="imagesync"} 7',
      'workqueue_longest_running_processor_seconds{name="imagesync",controller="imagesync"} 4',
      'rest_client_requests_total{code="409",host="10.0.0.1:443",method="PATCH"} 1',
      'rest_client_requests_total{code="<error>",host="10.0.0.1:443",method="GET"} 1',
      'leader_election_master_status{name="c8073f84.portager.io"} 1',
    ]
  ) assert.ok(text.includes(`\n${line}\n`), line);
  assert.match(text, /^process_resident_memory_bytes [1-9]\d+$/m);
  assert.match(text, /^process_cpu_seconds_total [\d.e-]+$/m);
  assert.match(text, /^process_start_time_seconds 1\d{9}$/m);
  // the bucket bounds are the float64s Go's ExponentialBuckets(10e-9, 10, 12) yields (as Go prints them)
  const les = [...text.matchAll(/^workqueue_queue_duration_seconds_bucket\{le="([^"]+)"/gm)].map((m) => m[1]);
  const goBounds =
    "1e-08 1e-07 1e-06 9.999999999999999e-06 9.999999999999999e-05 0.001 0.01 0.1 1 10 100 1000";
  assert.deepEqual(les, [...goBounds.split(" "), "+Inf"].map((b) => b === "+Inf" ? b : String(Number(b))));
  assert.match(
    text,
    /^controller_runtime_reconcile_time_seconds_bucket\{le="60",controller="imagesync"\} 5$/m,
  );
  const check = await promtoolCheckMetrics(text);
  assert.equal(check.code, 0, check.output);
  assert.equal(check.output.trim(), "", "promtool reported lint problems");
});
