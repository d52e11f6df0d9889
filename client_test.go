package runnel

import (
	"net/http"
	"strings"
	"testing"
)

func TestNewClientEnvironment(t *testing.T) {
	cases := []struct {
		name      string
		envHost   string
		envToken  string
		opts      []ClientOption
		wantHost  string
		wantToken string
	}{
		{name: "defaults", wantHost: "http://127.0.0.1:7077"},
		{name: "from env", envHost: "http://engine:9000", envToken: "tok", wantHost: "http://engine:9000", wantToken: "tok"},
		{name: "options win", envHost: "http://engine:9000", envToken: "tok",
			opts:     []ClientOption{WithHost("https://runnel.example.com/"), WithToken("other")},
			wantHost: "https://runnel.example.com", wantToken: "other"},
		{name: "empty token option wins", envToken: "tok", opts: []ClientOption{WithToken("")}, wantHost: DefaultHost},
		{name: "no scheme", envHost: "localhost:7077", wantHost: "http://localhost:7077"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvHost, tc.envHost)
			t.Setenv(EnvToken, tc.envToken)
			c, err := NewClient(tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if c.Host() != tc.wantHost || c.token != tc.wantToken {
				t.Errorf("host %q token %q, want %q %q", c.Host(), c.token, tc.wantHost, tc.wantToken)
			}
		})
	}
}

func TestNewClientInvalidHost(t *testing.T) {
	for _, host := range []string{"ftp://engine", "http://", "http://engine?x=1", "http://a b"} {
		if _, err := NewClient(WithHost(host)); err == nil || !strings.Contains(err.Error(), "invalid host") {
			t.Errorf("NewClient(WithHost(%q)) = %v, want an invalid host error", host, err)
		}
	}
}

func TestDefaultHTTPClientProtocols(t *testing.T) {
	tr := defaultHTTPClient("http://127.0.0.1:7077").Transport.(*http.Transport)
	// The transport uses h2c with prior knowledge only without HTTP/1.
	if p := tr.Protocols; !p.UnencryptedHTTP2() || p.HTTP1() {
		t.Errorf("http:// protocols = %v, want UnencryptedHTTP2 only", p)
	}
	tr = defaultHTTPClient("https://runnel.example.com").Transport.(*http.Transport)
	if p := tr.Protocols; !p.HTTP2() || !p.HTTP1() {
		t.Errorf("https:// protocols = %v, want HTTP1 and HTTP2", p)
	}
}

func TestWithHTTPClient(t *testing.T) {
	fw := newFakeWorkers()
	fs := newFakeServer(t, fw, nil)
	// An HTTP/1.1 client works too (connect streams over HTTP/1.1).
	c, err := NewClient(WithHost(fs.srv.URL), WithToken(testToken), WithHTTPClient(&http.Client{}), WithLogger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	startWorker(t, c, 1, NewWorkflow("wf").Step("a", func(Context) (any, error) { return 1, nil }))
	sess := recv(t, fw.sessions, "Listen")
	sess.assign(t, assignment("sr1", "wf", "a", 1))
	recv(t, fw.completes, "CompleteStep")
	for _, r := range fs.seen() {
		if r.protoMajor != 1 {
			t.Errorf("%s over HTTP/%d with a plain http.Client", r.path, r.protoMajor)
		}
	}
}
