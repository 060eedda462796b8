// Command referrers_registry serves go-containerregistry's pkg/registry (in memory) with
// registry.WithReferrersSupport(true): the OCI 1.1 referrers API, which Debian's
// docker-registry (distribution 2.8) lacks. Portager's tests use it as the registry that has
// the API. Built by scripts/build-tools.sh; driven by tests/harness/referrers_registry.ts.
//
// pkg/registry implements the API loosely; unless -strict=false, a thin layer in front of it
// makes it behave as distribution-spec v1.1 says:
//   - a referrer's artifactType is the manifest's artifactType, else its config's mediaType
//     (pkg/registry always reports the config's mediaType);
//   - ?artifactType=X filters the list and the answer carries OCI-Filters-Applied: artifactType;
//   - a manifest PUT with a subject answers OCI-Subject: <subject digest>;
//   - entries are sorted by digest, and with -page-size N the list is paginated with a
//     Link: <...>; rel="next" header.
//
// Flags: -listen (default 127.0.0.1:0), -tls-cert and -tls-key (serve HTTPS), -strict,
// -page-size. It prints "LISTENING <host:port>" on stdout once it accepts connections and one
// access line per request, "ACCESS <METHOD> <request-uri> <status>", on stdout, written before
// the response.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/registry"
)

// maxManifest bounds what the strict layer reads of a manifest PUT body.
const maxManifest = 16 << 20

var out sync.Mutex

func say(format string, args ...any) {
	out.Lock()
	defer out.Unlock()
	fmt.Fprintf(os.Stdout, format+"\n", args...)
}

// statusWriter logs the access line when the status is written: before the client can see
// the response, so a client that got an answer finds its line in the log already.
type statusWriter struct {
	http.ResponseWriter
	req     *http.Request
	status  int
	subject string
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
		if code == http.StatusCreated && w.subject != "" {
			w.Header().Set("OCI-Subject", w.subject)
		}
		say("ACCESS %s %s %d", w.req.Method, w.req.URL.RequestURI(), code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// referrersPath splits /v2/<name>/referrers/<digest>.
func referrersPath(p string) (name, digest string, ok bool) {
	if !strings.HasPrefix(p, "/v2/") {
		return "", "", false
	}
	elems := strings.Split(strings.TrimPrefix(p, "/v2/"), "/")
	if len(elems) < 3 || elems[len(elems)-2] != "referrers" {
		return "", "", false
	}
	return strings.Join(elems[:len(elems)-2], "/"), elems[len(elems)-1], true
}

func isManifestPath(p string) bool {
	elems := strings.Split(p, "/")
	return len(elems) >= 5 && elems[1] == "v2" && elems[len(elems)-2] == "manifests"
}

type strict struct {
	inner    http.Handler
	pageSize int
}

func (s *strict) get(path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.inner.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

func (s *strict) referrers(w http.ResponseWriter, r *http.Request, name, digest string) {
	rec := s.get(r.URL.Path)
	if rec.Code != http.StatusOK {
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
		return
	}
	var index map[string]json.RawMessage
	var entries []map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &index); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if err := json.Unmarshal(index["manifests"], &entries); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	for _, e := range entries {
		d, _ := e["digest"].(string)
		m := s.get("/v2/" + name + "/manifests/" + d)
		var body struct {
			ArtifactType string `json:"artifactType"`
		}
		if m.Code == http.StatusOK && json.Unmarshal(m.Body.Bytes(), &body) == nil && body.ArtifactType != "" {
			e["artifactType"] = body.ArtifactType
		}
	}
	q := r.URL.Query()
	if want := q.Get("artifactType"); want != "" {
		kept := entries[:0]
		for _, e := range entries {
			if e["artifactType"] == want {
				kept = append(kept, e)
			}
		}
		entries = kept
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	sort.Slice(entries, func(i, j int) bool {
		return fmt.Sprint(entries[i]["digest"]) < fmt.Sprint(entries[j]["digest"])
	})
	if last := q.Get("last"); last != "" {
		i := sort.Search(len(entries), func(i int) bool { return fmt.Sprint(entries[i]["digest"]) > last })
		entries = entries[i:]
	}
	if s.pageSize > 0 && len(entries) > s.pageSize {
		entries = entries[:s.pageSize]
		next := url.Values{}
		if want := q.Get("artifactType"); want != "" {
			next.Set("artifactType", want)
		}
		next.Set("last", fmt.Sprint(entries[len(entries)-1]["digest"]))
		w.Header().Set("Link", fmt.Sprintf("<%s?%s>; rel=\"next\"", r.URL.Path, next.Encode()))
	}
	if entries == nil {
		entries = []map[string]any{}
	}
	list, _ := json.Marshal(entries)
	index["manifests"] = list
	body, _ := json.Marshal(index)
	w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

func (s *strict) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := w.(*statusWriter)
	if name, digest, ok := referrersPath(r.URL.Path); ok && r.Method == http.MethodGet {
		s.referrers(w, r, name, digest)
		return
	}
	if r.Method == http.MethodPut && isManifestPath(r.URL.Path) {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxManifest+1))
		if err != nil || len(body) > maxManifest {
			http.Error(w, "manifest too large or unreadable", http.StatusRequestEntityTooLarge)
			return
		}
		var m struct {
			Subject *struct {
				Digest string `json:"digest"`
			} `json:"subject"`
		}
		if json.Unmarshal(body, &m) == nil && m.Subject != nil {
			sw.subject = m.Subject.Digest
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	s.inner.ServeHTTP(w, r)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (port 0: any free port)")
	certFile := flag.String("tls-cert", "", "serving certificate (PEM); with -tls-key, serve HTTPS")
	keyFile := flag.String("tls-key", "", "serving key (PEM)")
	strictFlag := flag.Bool("strict", true, "distribution-spec v1.1 referrers behaviour (see doc)")
	pageSize := flag.Int("page-size", 0, "strict: referrers per page (0: one page)")
	flag.Parse()
	if (*certFile == "") != (*keyFile == "") {
		fmt.Fprintln(os.Stderr, "referrers_registry: -tls-cert and -tls-key go together")
		os.Exit(2)
	}
	var h http.Handler = registry.New(
		registry.WithReferrersSupport(true),
		registry.Logger(log.New(io.Discard, "", 0)),
	)
	if *strictFlag {
		h = &strict{inner: h, pageSize: *pageSize}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "referrers_registry: %v\n", err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, req: r}
		h.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.WriteHeader(http.StatusOK)
		}
	})}
	say("LISTENING %s", ln.Addr().String())
	if *certFile != "" {
		err = srv.ServeTLS(ln, *certFile, *keyFile)
	} else {
		err = srv.Serve(ln)
	}
	fmt.Fprintf(os.Stderr, "referrers_registry: %v\n", err)
	os.Exit(1)
}
