package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client talks to a node's local HTTP API; the CLI uses it.
type Client struct {
	base string
	http *http.Client
}

// NewClient returns a client for the API at addr (host:port, or a URL).
// A nil hc uses a client with a 10 s timeout.
func NewClient(addr string, hc *http.Client) *Client {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	return &Client{base: strings.TrimRight(addr, "/"), http: hc}
}

// Health returns the node's health.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var h Health
	err := c.get(ctx, "/v1/health", &h)
	return h, err
}

// Peers returns the fleet as the node sees it, sorted by name.
func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	var p Peers
	err := c.get(ctx, "/v1/peers", &p)
	return p.Peers, err
}

// Submit sends a test file to the node, which validates it and announces
// it to the fleet; target, when set, replaces the file's target.
func (c *Client) Submit(ctx context.Context, spec []byte, target string) (string, error) {
	path := "/v1/tests"
	if target != "" {
		path += "?target=" + url.QueryEscape(target)
	}
	var out struct {
		ID string `json:"id"`
	}
	err := c.doType(ctx, http.MethodPost, path, "application/yaml", bytes.NewReader(spec), &out)
	return out.ID, err
}

// SubmitRun submits a test file with its run's parameters.
func (c *Client) SubmitRun(ctx context.Context, run Run) (string, error) {
	b, err := json.Marshal(run)
	if err != nil {
		return "", err
	}
	var out struct {
		ID string `json:"id"`
	}
	err = c.doType(ctx, http.MethodPost, "/v1/runs", "application/json", bytes.NewReader(b), &out)
	return out.ID, err
}

// Test returns a test's status with the fleet's seconds from since on;
// byNode adds each node's arrivals per second.
func (c *Client) Test(ctx context.Context, id string, since int64, byNode bool) (TestStatus, error) {
	var st TestStatus
	path := fmt.Sprintf("/v1/tests/%s?since=%d", url.PathEscape(id), since)
	if byNode {
		path += "&by=node"
	}
	err := c.get(ctx, path, &st)
	return st, err
}

// Tests lists the tests the node knows, newest first.
func (c *Client) Tests(ctx context.Context) ([]TestSummary, error) {
	var out struct {
		Tests []TestSummary `json:"tests"`
	}
	err := c.get(ctx, "/v1/tests", &out)
	return out.Tests, err
}

// History returns every stored run of a test by name, newest first, with
// its key figures.
func (c *Client) History(ctx context.Context, name string) ([]TestSummary, error) {
	var out struct {
		Tests []TestSummary `json:"tests"`
	}
	err := c.get(ctx, "/v1/tests?name="+url.QueryEscape(name), &out)
	return out.Tests, err
}

// Results asks the node for a test's merged results; by lists the
// breakdowns (region, node, step); to < 0 means the end of the test.
func (c *Client) Results(ctx context.Context, id string, by []string, from, to int64) (Results, error) {
	return c.ResultsWith(ctx, id, ResultsQuery{By: by, From: from, To: to})
}

// ResultsQuery is what GET /v1/tests/{id}/results asks for.
type ResultsQuery struct {
	By        []string // region, node, step
	From, To  int64    // seconds; To < 0: the end
	Exemplars bool     // list the slowest and failed requests' trace ids
}

// ResultsWith is Results with every option.
func (c *Client) ResultsWith(ctx context.Context, id string, q ResultsQuery) (Results, error) {
	var res Results
	v := url.Values{}
	if len(q.By) > 0 {
		v.Set("by", strings.Join(q.By, ","))
	}
	if q.From > 0 {
		v.Set("from", fmt.Sprint(q.From))
	}
	if q.To >= 0 {
		v.Set("to", fmt.Sprint(q.To))
	}
	if q.Exemplars {
		v.Set("exemplars", "1")
	}
	err := c.get(ctx, "/v1/tests/"+url.PathEscape(id)+"/results?"+v.Encode(), &res)
	return res, err
}

// Isolate cuts the node off from its fleet, or restores it.
func (c *Client) Isolate(ctx context.Context, on bool) error {
	b, _ := json.Marshal(Isolation{Isolated: on})
	return c.doType(ctx, http.MethodPost, "/v1/debug/isolate", "application/json", bytes.NewReader(b), nil)
}

// Stop stops a test: on every node when the API's node submitted or
// schedules it, else that node's share only (see StopResult).
func (c *Client) Stop(ctx context.Context, id string) (StopResult, error) {
	var res StopResult
	err := c.do(ctx, http.MethodDelete, "/v1/tests/"+url.PathEscape(id), nil, &res)
	return res, err
}

func (c *Client) get(ctx context.Context, path string, v any) error {
	return c.do(ctx, http.MethodGet, path, nil, v)
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, v any) error {
	return c.doType(ctx, method, path, "", body, v)
}

func (c *Client) doType(ctx context.Context, method, path, contentType string, body io.Reader, v any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("node API at %s: %w (is `swarm join` running there? see --api)", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return fmt.Errorf("node API %s: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		var ae apiError
		if json.Unmarshal(b, &ae) == nil && ae.Error != "" {
			return errors.New(ae.Error)
		}
		return fmt.Errorf("node API %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("node API %s: %w", path, err)
	}
	return nil
}
