package scenarios

import (
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
)

// RecoveryQuantiles are the latency quantiles the report can time a
// recovery for (its series keeps these per point).
var RecoveryQuantiles = []string{"p50", "p95", "p99"}

// LatencyLimits returns the fleet-wide latency limits the thresholds set,
// in milliseconds, by quantile: `p95 < 500` (or `p95 <= 500`, or `500 >
// p95`) gives p95 500. The report times how long latency took to come
// back under each after a load change (recovery["p95"]). With several
// rules on one quantile, the tightest wins.
func (sc *Scenario) LatencyLimits() map[string]float64 {
	out := map[string]float64{}
	for _, t := range sc.Thresholds {
		tree, err := parser.Parse(t.Src)
		if err != nil {
			continue // compiled once already; cannot happen
		}
		ast.Find(tree.Node, func(n ast.Node) bool {
			q, limit, ok := latencyLimit(n)
			if ok {
				if cur, seen := out[q]; !seen || limit < cur {
					out[q] = limit
				}
			}
			return false
		})
	}
	return out
}

// latencyLimit matches `q < N`, `q <= N`, `N > q` and `N >= q` for a
// recovery quantile q.
func latencyLimit(n ast.Node) (string, float64, bool) {
	b, ok := n.(*ast.BinaryNode)
	if !ok {
		return "", 0, false
	}
	ident, num := b.Left, b.Right
	switch b.Operator {
	case "<", "<=":
	case ">", ">=":
		ident, num = b.Right, b.Left
	default:
		return "", 0, false
	}
	id, ok := ident.(*ast.IdentifierNode)
	if !ok {
		return "", 0, false
	}
	known := false
	for _, q := range RecoveryQuantiles {
		known = known || id.Value == q
	}
	if !known {
		return "", 0, false
	}
	switch v := num.(type) {
	case *ast.IntegerNode:
		return id.Value, float64(v.Value), true
	case *ast.FloatNode:
		return id.Value, v.Value, true
	}
	return "", 0, false
}
