package scenarios

import (
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"
)

// Limits on user expressions: a rule or template is a line of logic, not a
// program. MaxExprLen bounds the source; MaxExprNodes the compiled AST
// (expr's own default is 10,000); the VM's default memory budget bounds
// the lists evaluation builds, and a byte budget checked before each
// allocation bounds the strings (see budget.go: the VM counts only after
// allocating).
const (
	MaxExprLen   = 4096
	MaxExprNodes = 1000
)

// functions are the only callables an expression sees: pure helpers for
// test data. Environments are plain structs and maps without methods, so
// nothing else can be called (see ../shared/LIBRARIES.md).
var functions = []expr.Option{
	expr.Function("randInt", func(p ...any) (any, error) {
		lo, hi := p[0].(int), p[1].(int)
		if hi < lo {
			return nil, fmt.Errorf("randInt(%d, %d): max is below min", lo, hi)
		}
		return lo + mrand.IntN(hi-lo+1), nil
	}, new(func(int, int) int)),
	expr.Function("randFloat", func(p ...any) (any, error) {
		return mrand.Float64(), nil
	}, new(func() float64)),
	expr.Function("randItem", func(p ...any) (any, error) {
		l, ok := p[0].([]any)
		if !ok || len(l) == 0 {
			return nil, errors.New("randItem: needs a non-empty list")
		}
		return l[mrand.IntN(len(l))], nil
	}),
	expr.Function("randString", func(p ...any) (any, error) {
		n, ok := p[0].(int)
		if !ok || n < 0 || n > 4096 {
			return nil, errors.New("randString: length must be 0..4096")
		}
		const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
		b := make([]byte, n)
		for i := range b {
			b[i] = letters[mrand.IntN(len(letters))]
		}
		return string(b), nil
	}, new(func(int) string)),
	expr.Function("uuid", func(p ...any) (any, error) {
		var b [16]byte
		_, _ = rand.Read(b[:])
		b[6] = b[6]&0x0f | 0x40
		b[8] = b[8]&0x3f | 0x80
		return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:]), nil
	}, new(func() string)),
	expr.Function("now", func(p ...any) (any, error) {
		return time.Now().UnixMilli(), nil
	}, new(func() int64)),
}

// compileExpr compiles src over env with our limits and functions.
func compileExpr(src string, env any, opts ...expr.Option) (*vm.Program, error) {
	if strings.TrimSpace(src) == "" {
		return nil, errors.New("expression is empty")
	}
	if len(src) > MaxExprLen {
		return nil, fmt.Errorf("expression is %d bytes, over the %d byte limit", len(src), MaxExprLen)
	}
	all := append([]expr.Option{expr.Env(env), expr.MaxNodes(MaxExprNodes)}, functions...)
	all = append(all, boundedFunctions...)
	all = append(all, expr.Patch(boundedPatch{}))
	all = append(all, opts...)
	p, err := expr.Compile(src, all...)
	if err != nil {
		// expr's messages span lines with a caret; keep the first line.
		msg, _, _ := strings.Cut(err.Error(), "\n")
		return nil, fmt.Errorf("%s", msg)
	}
	return p, nil
}

// uses reports whether the program reads one of the identifiers.
func uses(p *vm.Program, names ...string) bool {
	v := &identVisitor{want: names}
	n := p.Node()
	ast.Walk(&n, v)
	return v.found
}

type identVisitor struct {
	want  []string
	found bool
}

func (v *identVisitor) Visit(n *ast.Node) {
	if id, ok := (*n).(*ast.IdentifierNode); ok {
		for _, w := range v.want {
			if id.Value == w {
				v.found = true
			}
		}
	}
}

// IterEnv is what templates see while building a request.
type IterEnv struct {
	Vars    map[string]any    `expr:"vars"`    // scenario vars plus values extracted by earlier steps
	Env     map[string]string `expr:"env"`     // the run's parameters (swarm run -e)
	Arrival int64             `expr:"arrival"` // this arrival's number on this node, from 0

	budget budget // what the template being rendered may still build; unexported, so expressions cannot see it
}

// ResponseEnv is what checks and extractions see.
type ResponseEnv struct {
	Status   int               `expr:"status"`
	Headers  map[string]string `expr:"headers"` // lower-case names; repeated headers joined with ", "
	Body     string            `expr:"body"`
	JSON     any               `expr:"json"`     // the body parsed as JSON, nil if it is not JSON
	Duration float64           `expr:"duration"` // service time in milliseconds
	Vars     map[string]any    `expr:"vars"`
	Env      map[string]string `expr:"env"`
	Arrival  int64             `expr:"arrival"`

	budget budget // what the check being run may still build
}

// Template is a string with "{{ expr }}" holes.
type Template struct {
	src   string
	parts []tplPart
	// limit bounds the rendered string, and what names it in errors:
	// Render fails before it builds anything longer.
	limit int
	what  string
}

type tplPart struct {
	lit  string
	code string      // the hole's source, for errors
	prog *vm.Program // nil for a literal
}

// Static reports whether the template has no holes.
func (t *Template) Static() bool {
	return len(t.parts) <= 1 && (len(t.parts) == 0 || t.parts[0].prog == nil)
}

// String returns the source.
func (t *Template) String() string { return t.src }

// textLen is the length of the template's literal text.
func (t *Template) textLen() int {
	n := 0
	for _, p := range t.parts {
		n += len(p.lit)
	}
	return n
}

// ParseTemplate compiles every hole of src. The rendered string may be up
// to DefaultMaxBody long.
func ParseTemplate(src string) (*Template, error) {
	return parseTemplate(src, DefaultMaxBody, "template")
}

// parseTemplate compiles a template whose rendering is bounded by limit;
// what names the limit in errors ("body", "header value", "URL").
func parseTemplate(src string, limit int, what string) (*Template, error) {
	t := &Template{src: src, limit: limit, what: what}
	rest := src
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			if rest != "" {
				t.parts = append(t.parts, tplPart{lit: rest})
			}
			return t, nil
		}
		if i > 0 {
			t.parts = append(t.parts, tplPart{lit: rest[:i]})
		}
		j := strings.Index(rest[i:], "}}")
		if j < 0 {
			return nil, fmt.Errorf("template %q: \"{{\" without \"}}\"", clip(src))
		}
		code := rest[i+2 : i+j]
		p, err := compileExpr(code, IterEnv{})
		if err != nil {
			return nil, fmt.Errorf("template {{%s}}: %w", clip(code), err)
		}
		t.parts = append(t.parts, tplPart{code: code, prog: p})
		rest = rest[i+j+2:]
	}
}

// clip shortens a source quoted in an error.
func clip(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// Render evaluates the holes. machine is reused across calls by one worker.
// A result over the template's limit is an error, found before the
// string is built: the holes' expressions share a budget of the limit
// (see budget), and each part is measured before it is written.
func (t *Template) Render(machine *vm.VM, env *IterEnv) (string, error) {
	limit := t.limit
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	if t.Static() {
		if len(t.parts) == 0 {
			return "", nil
		}
		if len(t.parts[0].lit) > limit { // Compile refuses these; a hand-made Template may not
			return "", &limitError{limit: limit, what: t.what}
		}
		return t.parts[0].lit, nil
	}
	saved := env.budget
	env.budget = newBudget(limit, t.what)
	defer func() { env.budget = saved }()
	over := func() error { return &limitError{limit: limit, what: t.what} }
	var b strings.Builder
	for _, p := range t.parts {
		if p.prog == nil {
			if b.Len()+len(p.lit) > limit {
				return "", over()
			}
			b.WriteString(p.lit)
			continue
		}
		v, err := machine.Run(p.prog, env)
		if err != nil {
			var le *limitError
			if errors.As(err, &le) {
				return "", le
			}
			msg, _, _ := strings.Cut(err.Error(), "\n")
			return "", fmt.Errorf("{{%s}}: %s", clip(p.code), msg)
		}
		switch v := v.(type) {
		case string:
			if b.Len()+len(v) > limit {
				return "", over()
			}
			b.WriteString(v)
		case nil:
		default:
			n, err := fmtSize(v, 0, limit)
			if err != nil {
				return "", fmt.Errorf("{{%s}}: %v", clip(p.code), err)
			}
			if b.Len()+n > limit {
				return "", over()
			}
			fmt.Fprint(&b, v)
		}
	}
	return b.String(), nil
}

// NodeInfo is what distribution rules see as `node`: a fleet member's
// metadata as plain data.
type NodeInfo struct {
	Name     string            `expr:"name" json:"name"`
	Region   string            `expr:"region" json:"region"`
	Zone     string            `expr:"zone" json:"zone"`
	Org      string            `expr:"org" json:"org"`
	Capacity float64           `expr:"capacity" json:"capacity"` // max arrivals per second
	CPUs     int               `expr:"cpus" json:"cpus"`
	Tags     map[string]string `expr:"tags" json:"tags"`
}

// DistEnv is the environment of distribution rules.
type DistEnv struct {
	Node NodeInfo          `expr:"node"`
	Env  map[string]string `expr:"env"` // the run's parameters
}

// Distribution is a compiled DistributionSpec.
type Distribution struct {
	Spec    DistributionSpec
	selectP *vm.Program
	weightP *vm.Program
	env     map[string]string // the run's parameters (Compile sets them)
}

// Select reports whether a node takes part (true when there is no rule).
func (d *Distribution) Select(n NodeInfo) (bool, error) {
	if d == nil || d.selectP == nil {
		return true, nil
	}
	v, err := expr.Run(d.selectP, DistEnv{Node: n, Env: d.env})
	if err != nil {
		return false, fmt.Errorf("distribution.select on node %q: %w", n.Name, err)
	}
	return v.(bool), nil
}

// Weight is a node's weight (its capacity when there is no rule).
func (d *Distribution) Weight(n NodeInfo) (float64, error) {
	if d == nil || d.weightP == nil {
		return n.Capacity, nil
	}
	v, err := expr.Run(d.weightP, DistEnv{Node: n, Env: d.env})
	if err != nil {
		return 0, fmt.Errorf("distribution.weight on node %q: %w", n.Name, err)
	}
	w := v.(float64)
	if w < 0 || w != w {
		return 0, fmt.Errorf("distribution.weight on node %q: %v is not a weight (must be >= 0)", n.Name, w)
	}
	return w, nil
}
