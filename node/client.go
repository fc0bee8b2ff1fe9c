package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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

func (c *Client) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("node API at %s: %w (is `swarm join` running there? see --api)", c.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return fmt.Errorf("node API %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("node API %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("node API %s: %w", path, err)
	}
	return nil
}
