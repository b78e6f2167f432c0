package connectors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// MaxReply caps a provider's reply: a longer one is refused
// (ErrUnavailable), never cut short and parsed.
const MaxReply = 1 << 20

// Caller makes provider calls: one timeout per call, the reply read whole
// (capped), errors that never carry the request URL (WeChat puts the app
// secret in the query string), and an Observer told of every call.
type Caller struct {
	HTTP        *http.Client // nil: http.DefaultClient's transport
	ConnectorID string
	Observe     Observer // may be nil
}

// Reply is a provider's raw answer.
type Reply struct {
	Status      int
	ContentType string
	Body        []byte
	Elapsed     time.Duration // how long the call took, for Report
}

// Do sends req (built without a context) and returns the reply. A
// transport failure, a timeout, a 5xx, a redirect or a reply larger than
// MaxReply is ErrUnavailable; the error text names the endpoint, never the
// URL. Redirects are never followed: a provider answers its API calls
// directly, and following one would send the secret-bearing URL in a
// Referer and let a provider steer the broker elsewhere. The caller
// reports the provider-level result with Report once it has parsed the
// body.
func (c *Caller) Do(ctx context.Context, endpoint string, req *http.Request) (Reply, error) {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	client := http.Client{}
	if c.HTTP != nil {
		client = *c.HTTP
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	start := time.Now()
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		c.report(endpoint, "unavailable", start)
		return Reply{}, fmt.Errorf("%s: %w: %s", endpoint, ErrUnavailable, urlFree(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxReply+1))
	if err != nil {
		c.report(endpoint, "unavailable", start)
		return Reply{}, fmt.Errorf("%s: %w: reading reply: %s", endpoint, ErrUnavailable, urlFree(err))
	}
	if len(body) > MaxReply {
		c.report(endpoint, "unavailable", start)
		return Reply{}, fmt.Errorf("%s: %w: the reply is larger than %d bytes", endpoint, ErrUnavailable, MaxReply)
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		c.report(endpoint, "unavailable", start)
		return Reply{}, fmt.Errorf("%s: %w: HTTP %d redirect refused (provider calls never follow redirects)", endpoint, ErrUnavailable, resp.StatusCode)
	}
	if resp.StatusCode >= 500 {
		c.report(endpoint, "unavailable", start)
		return Reply{}, fmt.Errorf("%s: %w: HTTP %d", endpoint, ErrUnavailable, resp.StatusCode)
	}
	return Reply{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: body, Elapsed: time.Since(start)}, nil
}

// Get is Do for a GET of base+path?query.
func (c *Caller) Get(ctx context.Context, endpoint, base, path string, query url.Values) (Reply, error) {
	u := base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return Reply{}, fmt.Errorf("%s: building request: %w", endpoint, ErrConfig)
	}
	return c.Do(ctx, endpoint, req)
}

// Report tells the Observer how a call that Do returned ended, once its
// body was understood: "ok", "error" or "unavailable" (d: Reply.Elapsed).
// Do itself reports only the calls that fail before a reply.
func (c *Caller) Report(endpoint, result string, d time.Duration) {
	if c.Observe != nil {
		c.Observe(c.ConnectorID, endpoint, result, d)
	}
}

// Call makes one provider API call: it sends the request build makes,
// hands the reply to parse and tells the Observer, exactly once, how the
// call ended: "ok" when parse accepts the reply; "error" or
// "unavailable" (ErrUnavailable) when parse returns a *ProviderError,
// which comes back with Endpoint set and every secret redacted from its
// Message; "unavailable" for any other failure. Other errors read
// "{provider} {endpoint}: ..." and never carry the request URL.
func (c *Caller) Call(ctx context.Context, provider, endpoint string, build func() (*http.Request, error), secrets []string, parse func(Reply) error) error {
	req, err := build()
	if err != nil {
		return fmt.Errorf("%s %s: building request: %w", provider, endpoint, ErrConfig)
	}
	reply, err := c.Do(ctx, endpoint, req)
	if err != nil {
		return fmt.Errorf("%s %w", provider, err)
	}
	err = parse(reply)
	var pe *ProviderError
	switch {
	case err == nil:
		c.Report(endpoint, "ok", reply.Elapsed)
		return nil
	case errors.As(err, &pe):
		pe.Endpoint = endpoint
		pe.Message = Redact(pe.Message, secrets...)
		result := "error"
		if errors.Is(err, ErrUnavailable) {
			result = "unavailable"
		}
		c.Report(endpoint, result, reply.Elapsed)
		return pe
	default:
		c.Report(endpoint, "unavailable", reply.Elapsed)
		return fmt.Errorf("%s %s: %w", provider, endpoint, err)
	}
}

func (c *Caller) report(endpoint, result string, start time.Time) {
	c.Report(endpoint, result, time.Since(start))
}

// urlFree turns an error into text without any URL (and so without any
// secret or code in a query string).
func urlFree(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		if errors.Is(ue.Err, context.DeadlineExceeded) || ue.Timeout() {
			return ue.Op + ": timeout"
		}
		return ue.Op + ": " + urlFree(ue.Err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return err.Error()
}
