// Command leader_peer is a client-go leader-election peer for Portager's tests: a real
// k8s.io/client-go/tools/leaderelection elector on a coordination.k8s.io/v1 Lease, as
// controller-runtime (and so upstream Portager) runs it. It prints one line per event on stdout:
//
//	NEW_LEADER <identity>   client-go's OnNewLeader (any peer, ourselves included)
//	LEADING <identity>      we acquired the Lease (OnStartedLeading)
//	STOPPED <identity>      we were leading and stopped (lost the Lease, or cancelled)
//	EXIT <identity> <why>   just before the process exits ("signal" or "lost")
//
// With -trace-reads it also prints, on stderr, one line per read of the Lease, as client-go's
// elector sees it:
//
//	READ <unix µs> <mono µs> <changed|same> <renewTime µs> <raw record>
//
// <unix µs> is the wall clock and <mono µs> the monotonic time since start, both taken when the
// read returned (client-go's observedTime); <changed|same> says whether the raw record (the JSON
// client-go compares, whose times have whole seconds) differs from the previous read's, which is
// what restarts client-go's lease clock; <renewTime µs> is the renewTime as written.
//
// SIGTERM or SIGINT cancels the elector; with -release-on-cancel the Lease is released first
// (holderIdentity cleared), as controller-runtime's LeaderElectionReleaseOnCancel does. Losing
// the Lease without a signal exits with status 1, as controller-runtime's manager does.
// Built by scripts/build-tools.sh; driven by tests/harness/leader_peer.ts.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

var start = time.Now()

var out sync.Mutex

func say(format string, args ...any) {
	out.Lock()
	defer out.Unlock()
	fmt.Fprintf(os.Stdout, format+"\n", args...)
}

// tracingLock is client-go's LeaseLock with each Get reported on stderr (see -trace-reads).
type tracingLock struct {
	*resourcelock.LeaseLock
	last []byte
}

func (t *tracingLock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	record, raw, err := t.LeaseLock.Get(ctx)
	if err != nil {
		return record, raw, err
	}
	now := time.Now()
	changed := "same"
	if string(raw) != string(t.last) {
		changed = "changed"
	}
	t.last = append(t.last[:0], raw...)
	out.Lock()
	fmt.Fprintf(os.Stderr, "READ %d %d %s %s %s\n", now.UnixMicro(), now.Sub(start).Microseconds(),
		changed, record.RenewTime.UTC().Format(time.RFC3339Nano), raw)
	out.Unlock()
	return record, raw, err
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig file (required)")
	namespace := flag.String("namespace", "default", "namespace of the Lease")
	leaseName := flag.String("lease-name", "c8073f84.portager.io", "name of the Lease")
	identity := flag.String("identity", "", "holder identity (default: hostname_pid)")
	leaseDuration := flag.Duration("lease-duration", 15*time.Second, "LeaseDuration")
	renewDeadline := flag.Duration("renew-deadline", 10*time.Second, "RenewDeadline")
	retryPeriod := flag.Duration("retry-period", 2*time.Second, "RetryPeriod")
	releaseOnCancel := flag.Bool("release-on-cancel", true, "release the Lease on SIGTERM/SIGINT")
	traceReads := flag.Bool("trace-reads", false, "print each read of the Lease on stderr")
	flag.Parse()
	if *kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "leader_peer: -kubeconfig is required")
		os.Exit(2)
	}
	id := *identity
	if id == "" {
		host, _ := os.Hostname()
		id = fmt.Sprintf("%s_%d", host, os.Getpid())
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintf(os.Stderr, "leader_peer: kubeconfig: %v\n", err)
		os.Exit(2)
	}
	client, err := coordinationv1client.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "leader_peer: client: %v\n", err)
		os.Exit(2)
	}
	leaseLock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: *namespace, Name: *leaseName},
		Client:     client,
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	var lock resourcelock.Interface = leaseLock
	if *traceReads {
		lock = &tracingLock{LeaseLock: leaseLock}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var mu sync.Mutex
	leading := false
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   *leaseDuration,
		RenewDeadline:   *renewDeadline,
		RetryPeriod:     *retryPeriod,
		ReleaseOnCancel: *releaseOnCancel,
		Name:            id,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) {
				mu.Lock()
				leading = true
				mu.Unlock()
				say("LEADING %s", id)
			},
			// client-go calls this on every exit of Run, leading or not: report only a real stop
			OnStoppedLeading: func() {
				mu.Lock()
				was := leading
				leading = false
				mu.Unlock()
				if was {
					say("STOPPED %s", id)
				}
			},
			OnNewLeader: func(holder string) { say("NEW_LEADER %s", holder) },
		},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "leader_peer: %v\n", err)
		os.Exit(2)
	}
	say("STARTED %s", id)
	elector.Run(ctx)
	if ctx.Err() != nil {
		say("EXIT %s signal", id)
		return
	}
	say("EXIT %s lost", id)
	os.Exit(1)
}
