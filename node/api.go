package node

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/loadswarm/loadswarm/report/web"
)

// Health is the answer of GET /v1/health.
type Health struct {
	Status       string  `json:"status"` // "ok"
	Name         string  `json:"name"`
	PeerID       string  `json:"peer_id"`
	Version      string  `json:"version"`
	Gossip       string  `json:"gossip"`    // this node's gossip address: a seed
	Fleet        string  `json:"fleet"`     // "open" or "private"
	FleetKey     string  `json:"fleet_key"` // the key's fingerprint, or "none"
	MembersAlive int     `json:"members_alive"`
	UptimeSec    float64 `json:"uptime_s"`
	Isolated     bool    `json:"isolated,omitempty"` // cut off from the fleet by POST /v1/debug/isolate
}

// Peer is one member in GET /v1/peers.
type Peer struct {
	Name           string            `json:"name"`
	Region         string            `json:"region"`
	Zone           string            `json:"zone"`
	Org            string            `json:"org"`
	CapacityPerSec int               `json:"capacity"`
	CPUs           int               `json:"cpus"`
	Tags           map[string]string `json:"tags,omitempty"`
	State          string            `json:"state"`   // alive, suspect, dead or left
	Address        string            `json:"address"` // gossip address
	PeerID         string            `json:"peer_id"`
	P2PAddrs       []string          `json:"p2p_addrs"`
	Version        string            `json:"version"`
	Self           bool              `json:"self"`
	Since          time.Time         `json:"since"` // when this node saw the state change
}

// Peers is the answer of GET /v1/peers.
type Peers struct {
	Peers []Peer `json:"peers"`
}

func (n *Node) routes() {
	n.mux.HandleFunc("GET /v1/health", n.handleHealth)
	n.mux.HandleFunc("GET /v1/peers", n.handlePeers)
	// Prometheus metrics; the guard refuses browsers here as elsewhere.
	n.mux.Handle("GET /metrics", n.metrics.handler)
	n.testRoutes()
	n.mux.HandleFunc("GET /v1/stream", n.handleStream)
	ui := web.Handler()
	n.mux.Handle("GET /ui", ui)
	n.mux.Handle("GET /ui/", ui)
	if n.cfg.DebugAPI {
		n.mux.HandleFunc("POST /v1/debug/isolate", n.handleIsolate)
	}
}

// Isolation is the body of POST /v1/debug/isolate.
type Isolation struct {
	Isolated bool `json:"isolated"`
}

// handleIsolate cuts this node off from the fleet or restores it: a fault
// injection for demonstrations and tests (swarm testnet isolate). It is
// served only with Config.DebugAPI (the testnet sets it).
func (n *Node) handleIsolate(w http.ResponseWriter, r *http.Request) {
	var body Isolation
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("body: want {\"isolated\": true|false}: %v", err))
		return
	}
	n.SetIsolated(body.Isolated)
	writeJSON(w, http.StatusOK, body)
}

// SetIsolated cuts the node off from the fleet (gossip and libp2p) or
// restores it; restored, it joins its seeds again at once.
func (n *Node) SetIsolated(on bool) {
	n.sw.SetIsolated(on)
	n.log.Warn("isolation changed", "isolated", on)
	if !on && len(n.cfg.Seeds) > 0 {
		go func() {
			if _, err := n.sw.Join(n.cfg.Seeds); err != nil {
				n.log.Warn("rejoin after isolation failed; retrying in the background", "error", err)
				return
			}
			n.reg.catchUp(n.reg.ctx)
		}()
	}
}

func (n *Node) handleHealth(w http.ResponseWriter, r *http.Request) {
	fleet := "private"
	if n.fleetKey.IsZero() {
		fleet = "open"
	}
	writeJSON(w, http.StatusOK, Health{
		Status: "ok", Name: n.cfg.Name, PeerID: n.sw.PeerID(), Version: n.cfg.Version,
		Gossip: n.sw.GossipAddr(), Fleet: fleet, FleetKey: n.fleetKey.Fingerprint(), MembersAlive: n.sw.NumAlive(),
		UptimeSec: time.Since(n.started).Seconds(), Isolated: n.sw.Isolated(),
	})
}

func (n *Node) handlePeers(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, n.peers())
}

func (n *Node) peers() Peers {
	members := n.sw.Members()
	out := Peers{Peers: make([]Peer, 0, len(members))}
	for _, m := range members {
		out.Peers = append(out.Peers, Peer{
			Name: m.Name, Region: m.Meta.Region, Zone: m.Meta.Zone, Org: m.Meta.Org,
			CapacityPerSec: m.Meta.CapacityPerSec, CPUs: m.Meta.CPUs, Tags: m.Meta.Tags,
			State: m.State.String(), Address: m.Addr, PeerID: m.PeerID, P2PAddrs: m.P2PAddrs,
			Version: m.Version, Self: m.Self, Since: m.Since.UTC(),
		})
	}
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
