package scenarios

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/vm/runtime"
)

// Limits on what one request's templates may build. A template that would
// go over one fails that request (error class "other"), and it fails before
// the big string is allocated: a scenario can make a node send large
// requests, never run it out of memory.
const (
	// DefaultMaxBody bounds a rendered request body unless the scenario
	// sets max_body.
	DefaultMaxBody = 1 << 20
	// MaxBodyLimit is the largest max_body a scenario may set.
	MaxBodyLimit = 64 << 20
	// MaxHeaderValue bounds one rendered header value, MaxHeaderBytes all
	// of a request's headers (names and values), MaxURLBytes its URL:
	// servers refuse more than this anyway (8 KiB is nginx's and Go's
	// usual line limit).
	MaxHeaderValue = 8 << 10
	MaxHeaderBytes = 64 << 10
	MaxURLBytes    = 8 << 10

	// responseExprMax bounds a string that a check or an extraction builds:
	// the largest body it can read.
	responseExprMax = MaxBodyRead
	// otherExprMax bounds a string built by an expression without a budget
	// of its own (distribution rules, thresholds): they see names and
	// numbers.
	otherExprMax = 64 << 10
)

// budget bounds what one evaluation of a template's expressions (or of a
// check) may build: no string or list over max bytes, and at most left
// bytes in all. Growing operations take from it before they allocate, so
// an expression that would go over fails with nothing allocated. Twice
// max in all leaves room for the intermediate values of a concatenation.
type budget struct {
	max, left int
	what      string // "body", "header value", ...: for the message
}

func newBudget(max int, what string) budget { return budget{max: max, left: 2 * max, what: what} }

// take reserves n bytes; n < 0 stands for a size that overflowed.
func (b *budget) take(n int) error {
	if n < 0 || n > b.max || n > b.left {
		return &limitError{limit: b.max, what: b.what}
	}
	b.left -= n
	return nil
}

// limitError says that a template would build something over a limit.
type limitError struct {
	limit int
	what  string
}

func (e *limitError) Error() string {
	return fmt.Sprintf("over the %s %s limit", FormatSize(int64(e.limit)), e.what)
}

// budgetOf finds the evaluation's budget in its environment ($env, which
// boundedPatch passes to every growing operation). An environment without
// one gets a small budget per operation.
func budgetOf(env any) *budget {
	switch e := env.(type) {
	case *IterEnv:
		if e.budget.max > 0 {
			return &e.budget
		}
	case *ResponseEnv:
		if e.budget.max > 0 {
			return &e.budget
		}
	}
	b := newBudget(otherExprMax, "expression")
	return &b
}

// mulSize is a*b, or -1 when it overflows.
func mulSize(a, b int) int {
	if a < 0 || b < 0 || (b != 0 && a > math.MaxInt/b) {
		return -1
	}
	return a * b
}

// addSize is a+b, or -1 when it overflows.
func addSize(a, b int) int {
	if a < 0 || b < 0 || a > math.MaxInt-b {
		return -1
	}
	return a + b
}

// addFunc replaces the + operator where an operand may be a string.
const addFunc = "_add"

// boundedNames are the builtins replaced by boundedFunctions: the ones that
// build a string or a list whose size the arguments do not bound.
var boundedNames = map[string]bool{
	"repeat": true, "join": true, "replace": true, "upper": true, "lower": true,
	"split": true, "splitAfter": true, "toJSON": true, "fromJSON": true,
	"toBase64": true, "fromBase64": true, "string": true,
	"keys": true, "values": true, "toPairs": true,
}

// boundedPatch makes every growing operation check the evaluation's
// budget: a + whose operands are not both numbers (or times) becomes
// _add(a, b, $env), and a call of a bounded builtin gets $env as its last
// argument. expr.Operator cannot do the first: it matches operand types at
// compile time, and `vars.s + vars.s` has operands of unknown type.
type boundedPatch struct{}

func (boundedPatch) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.BinaryNode:
		if n.Operator == "+" && !(arithmetic(n.Left.Type()) && arithmetic(n.Right.Type())) {
			ast.Patch(node, &ast.CallNode{
				Callee:    &ast.IdentifierNode{Value: addFunc},
				Arguments: []ast.Node{n.Left, n.Right, &ast.IdentifierNode{Value: "$env"}},
			})
		}
	case *ast.CallNode:
		if id, ok := n.Callee.(*ast.IdentifierNode); ok && boundedNames[id.Value] {
			// A new node: the checker keeps the overload it chose for the
			// old one, which takes one argument less.
			ast.Patch(node, &ast.CallNode{
				Callee:    &ast.IdentifierNode{Value: id.Value},
				Arguments: append(n.Arguments, &ast.IdentifierNode{Value: "$env"}),
			})
		}
	}
}

var timeType = reflect.TypeOf(time.Time{})

// arithmetic reports whether + on t is arithmetic, never a concatenation.
func arithmetic(t reflect.Type) bool {
	if t == nil {
		return false
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return t == timeType
}

// envArgs splits a patched call's arguments from the $env that boundedPatch
// appended.
func envArgs(p []any) ([]any, *budget) { return p[:len(p)-1], budgetOf(p[len(p)-1]) }

// builtinFunc returns expr's own implementation of a builtin.
func builtinFunc(name string) *builtin.Function {
	for _, f := range builtin.Builtins {
		if f.Name == name {
			return f
		}
	}
	panic("expr has no builtin " + name)
}

// boundedFunctions replace the + operator on strings and the builtins that
// grow strings or lists: each works out the size of its result (or a
// bound on it) from its arguments, takes it from the budget, and only
// then builds the result. Their types are the builtins' with the $env
// argument last, the longest overloads first (expr's checker trips over a
// call with more arguments than the overload it tries).
var boundedFunctions = []expr.Option{
	expr.Function(addFunc, func(p ...any) (any, error) {
		args, b := envArgs(p)
		if x, ok := args[0].(string); ok {
			if y, ok := args[1].(string); ok {
				if err := b.take(addSize(len(x), len(y))); err != nil {
					return nil, err
				}
				return x + y, nil
			}
		}
		return runtime.Add(args[0], args[1]), nil // numbers, times; panics (an error) on others
	}, new(func(string, string, any) string), new(func(any, any, any) any)),

	expr.Function("repeat", func(p ...any) (any, error) {
		args, b := envArgs(p)
		s, n := args[0].(string), runtime.ToInt(args[1])
		if n < 0 {
			return nil, fmt.Errorf("repeat: count %d is negative", n)
		}
		if err := b.take(mulSize(len(s), n)); err != nil {
			return nil, err
		}
		return strings.Repeat(s, n), nil
	}, new(func(string, int, any) string)),

	expr.Function("join", func(p ...any) (any, error) {
		args, b := envArgs(p)
		glue := ""
		if len(args) == 2 {
			glue = args[1].(string)
		}
		var parts []string
		switch l := args[0].(type) {
		case []string:
			parts = l
		case []any:
			parts = make([]string, len(l))
			for i, v := range l {
				s, ok := v.(string)
				if !ok {
					return nil, fmt.Errorf("join: element %d is a %T, not a string", i, v)
				}
				parts[i] = s
			}
		default:
			return nil, fmt.Errorf("join: cannot join a %T", args[0])
		}
		size := mulSize(max(len(parts)-1, 0), len(glue))
		for _, s := range parts {
			size = addSize(size, len(s))
		}
		if err := b.take(size); err != nil {
			return nil, err
		}
		return strings.Join(parts, glue), nil
	}, new(func([]any, string, any) string), new(func([]string, string, any) string),
		new(func([]any, any) string), new(func([]string, any) string)),

	expr.Function("replace", func(p ...any) (any, error) {
		args, b := envArgs(p)
		s, old, repl := args[0].(string), args[1].(string), args[2].(string)
		n := -1
		if len(args) == 4 {
			n = runtime.ToInt(args[3])
		}
		count := strings.Count(s, old)
		if n >= 0 {
			count = min(count, n)
		}
		size := len(s)
		if grow := len(repl) - len(old); grow > 0 {
			size = addSize(size, mulSize(count, grow))
		}
		if err := b.take(size); err != nil {
			return nil, err
		}
		return strings.Replace(s, old, repl, n), nil
	}, new(func(string, string, string, int, any) string), new(func(string, string, string, any) string)),

	// Changing case can grow a string by half (a 2-byte letter whose other
	// case takes 3).
	expr.Function("upper", func(p ...any) (any, error) {
		args, b := envArgs(p)
		s := args[0].(string)
		if err := b.take(addSize(len(s), len(s)/2)); err != nil {
			return nil, err
		}
		return strings.ToUpper(s), nil
	}, new(func(string, any) string)),
	expr.Function("lower", func(p ...any) (any, error) {
		args, b := envArgs(p)
		s := args[0].(string)
		if err := b.take(addSize(len(s), len(s)/2)); err != nil {
			return nil, err
		}
		return strings.ToLower(s), nil
	}, new(func(string, any) string)),

	expr.Function("split", func(p ...any) (any, error) { return boundedSplit(p, strings.SplitN) },
		new(func(string, string, int, any) []string), new(func(string, string, any) []string)),
	expr.Function("splitAfter", func(p ...any) (any, error) { return boundedSplit(p, strings.SplitAfterN) },
		new(func(string, string, int, any) []string), new(func(string, string, any) []string)),

	expr.Function("toJSON", func(p ...any) (any, error) {
		args, b := envArgs(p)
		size, err := jsonSize(args[0], 0, b.max)
		if err != nil {
			return nil, fmt.Errorf("toJSON: %w", err)
		}
		if err := b.take(size); err != nil {
			return nil, err
		}
		out, err := json.MarshalIndent(args[0], "", "  ") // as expr's own toJSON
		if err != nil {
			return nil, err
		}
		return string(out), nil
	}, new(func(any, any) string)),

	// Decoded JSON takes several times its text in memory (boxed values,
	// maps); 8 bytes per byte of text is a generous bound.
	expr.Function("fromJSON", func(p ...any) (any, error) {
		args, b := envArgs(p)
		s := args[0].(string)
		if err := b.take(mulSize(len(s), 8)); err != nil {
			return nil, err
		}
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return nil, err
		}
		return v, nil
	}, new(func(string, any) any)),

	expr.Function("toBase64", func(p ...any) (any, error) {
		args, b := envArgs(p)
		s := args[0].(string)
		if err := b.take(base64.StdEncoding.EncodedLen(len(s))); err != nil {
			return nil, err
		}
		return base64.StdEncoding.EncodeToString([]byte(s)), nil
	}, new(func(string, any) string)),
	expr.Function("fromBase64", func(p ...any) (any, error) {
		args, b := envArgs(p)
		s := args[0].(string)
		if err := b.take(base64.StdEncoding.DecodedLen(len(s))); err != nil {
			return nil, err
		}
		out, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, err
		}
		return string(out), nil
	}, new(func(string, any) string)),

	expr.Function("string", func(p ...any) (any, error) {
		args, b := envArgs(p)
		if s, ok := args[0].(string); ok {
			return s, nil
		}
		size, err := fmtSize(args[0], 0, b.max)
		if err != nil {
			return nil, fmt.Errorf("string: %w", err)
		}
		if err := b.take(size); err != nil {
			return nil, err
		}
		return fmt.Sprint(args[0]), nil
	}, new(func(any, any) string)),

	// keys, values and toPairs copy a map into a list: 16 bytes an entry
	// (32 a pair).
	boundedMapFunc("keys", 16),
	boundedMapFunc("values", 16),
	boundedMapFunc("toPairs", 32),
}

// boundedSplit is split and splitAfter: a list of n strings takes 16 bytes
// a string.
func boundedSplit(p []any, split func(s, sep string, n int) []string) (any, error) {
	args, b := envArgs(p)
	s, sep := args[0].(string), args[1].(string)
	n := -1
	if len(args) == 3 {
		n = runtime.ToInt(args[2])
	}
	parts := strings.Count(s, sep) + 1
	if sep == "" {
		parts = utf8.RuneCountInString(s)
	}
	if n >= 0 {
		parts = min(parts, n)
	}
	if err := b.take(mulSize(parts, 16)); err != nil {
		return nil, err
	}
	return split(s, sep, n), nil
}

// boundedMapFunc wraps expr's builtin name, which copies a map into a list
// of per-entry bytes an entry.
func boundedMapFunc(name string, per int) expr.Option {
	orig := builtinFunc(name).Func
	return expr.Function(name, func(p ...any) (any, error) {
		args, b := envArgs(p)
		v := reflect.ValueOf(args[0])
		if v.Kind() != reflect.Map {
			return nil, fmt.Errorf("%s: needs a map, not a %T", name, args[0])
		}
		if err := b.take(mulSize(v.Len(), per)); err != nil {
			return nil, err
		}
		return orig(args...)
	}, new(func(any, any) any))
}

// maxValueDepth bounds how deep the size walks below go: values come from
// YAML, JSON and expressions, all with depth limits of their own.
const maxValueDepth = 100

var errTooDeep = errors.New("value nested too deep")

// fmtSize is an upper bound on len(fmt.Sprint(v)), computed without
// building it; past limit it stops counting. It knows the values that
// expressions make; others are refused rather than guessed.
func fmtSize(v any, depth, limit int) (int, error) {
	if depth > maxValueDepth {
		return 0, errTooDeep
	}
	switch v := v.(type) {
	case nil:
		return len("<nil>"), nil
	case string:
		return len(v), nil
	case bool:
		return len("false"), nil
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, uintptr:
		return 20, nil
	case float32, float64:
		return 32, nil
	case time.Duration:
		return 32, nil
	case time.Time:
		return 80, nil
	case []string:
		n := 2 + max(len(v)-1, 0)
		for _, s := range v {
			if n = addSize(n, len(s)); n < 0 || n > limit {
				return n, nil
			}
		}
		return n, nil
	case []any:
		n := 2 + max(len(v)-1, 0)
		for _, e := range v {
			m, err := fmtSize(e, depth+1, limit)
			if err != nil {
				return 0, err
			}
			if n = addSize(n, m); n < 0 || n > limit {
				return n, nil
			}
		}
		return n, nil
	case map[string]any:
		n := len("map[]") + max(len(v)-1, 0)
		for k, e := range v {
			m, err := fmtSize(e, depth+1, limit)
			if err != nil {
				return 0, err
			}
			if n = addSize(n, addSize(len(k)+1, m)); n < 0 || n > limit {
				return n, nil
			}
		}
		return n, nil
	case map[string]string:
		n := len("map[]") + max(len(v)-1, 0)
		for k, e := range v {
			if n = addSize(n, len(k)+1+len(e)); n < 0 || n > limit {
				return n, nil
			}
		}
		return n, nil
	}
	return reflectSize(v, depth, limit, fmtSize, fmtSize, "[]", "map[]")
}

// reflectSize sizes the lists and maps of other types (toPairs's
// [][2]any, say) the way fmtSize and jsonSize do theirs: elem sizes an
// element, key a map key, open the empty list or map.
func reflectSize(v any, depth, limit int, elem, key func(any, int, int) (int, error), list, dict string) (int, error) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		n := len(list) + rv.Len()
		for i := 0; i < rv.Len(); i++ {
			m, err := elem(rv.Index(i).Interface(), depth+1, limit)
			if err != nil {
				return 0, err
			}
			if n = addSize(n, m); n < 0 || n > limit {
				return n, nil
			}
		}
		return n, nil
	case reflect.Map:
		n := len(dict) + 2*rv.Len()
		for it := rv.MapRange(); it.Next(); {
			k, err := key(it.Key().Interface(), depth+1, limit)
			if err != nil {
				return 0, err
			}
			m, err := elem(it.Value().Interface(), depth+1, limit)
			if err != nil {
				return 0, err
			}
			if n = addSize(n, addSize(k, m)); n < 0 || n > limit {
				return n, nil
			}
		}
		return n, nil
	}
	return 0, fmt.Errorf("cannot turn a %T into text", v)
}

// jsonSize is an upper bound on the length of json.MarshalIndent(v, "",
// "  "), computed without building it; past limit it stops counting.
func jsonSize(v any, depth, limit int) (int, error) {
	if depth > maxValueDepth {
		return 0, errTooDeep
	}
	// Each element of a non-empty list or map takes a newline, its
	// indentation and a comma besides itself.
	item := 2 + 2*(depth+1)
	switch v := v.(type) {
	case nil:
		return len("null"), nil
	case string:
		return jsonStringSize(v), nil
	case bool:
		return len("false"), nil
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, time.Duration:
		return 20, nil
	case float32, float64:
		return 32, nil
	case time.Time:
		return 40, nil
	case []string:
		n := 2 + 2*depth + 1
		for _, s := range v {
			if n = addSize(n, item+jsonStringSize(s)); n < 0 || n > limit {
				return n, nil
			}
		}
		return n, nil
	case []any:
		n := 2 + 2*depth + 1
		for _, e := range v {
			m, err := jsonSize(e, depth+1, limit)
			if err != nil {
				return 0, err
			}
			if n = addSize(n, addSize(item, m)); n < 0 || n > limit {
				return n, nil
			}
		}
		return n, nil
	case map[string]any:
		n := 2 + 2*depth + 1
		for k, e := range v {
			m, err := jsonSize(e, depth+1, limit)
			if err != nil {
				return 0, err
			}
			if n = addSize(n, addSize(item+jsonStringSize(k)+2, m)); n < 0 || n > limit {
				return n, nil
			}
		}
		return n, nil
	case map[string]string:
		n := 2 + 2*depth + 1
		for k, e := range v {
			if n = addSize(n, item+jsonStringSize(k)+2+jsonStringSize(e)); n < 0 || n > limit {
				return n, nil
			}
		}
		return n, nil
	}
	// Other lists and maps: each element takes what a list element does,
	// a key is quoted text.
	pad := func(e any, d, l int) (int, error) {
		m, err := jsonSize(e, d, l)
		return addSize(m, item+2), err
	}
	keySize := func(k any, d, l int) (int, error) {
		m, err := fmtSize(k, d, l)
		return addSize(mulSize(m, 6), 2), err
	}
	n, err := reflectSize(v, depth, limit, pad, keySize, "[\n]", "{\n}")
	if err != nil {
		return 0, fmt.Errorf("cannot encode a %T", v)
	}
	return addSize(n, 2*depth), nil
}

// jsonStringSize bounds a JSON string's length: its quotes, and up to six
// bytes (\u00XX, \ufffd) for each byte that may need escaping.
func jsonStringSize(s string) int {
	n := 2 + len(s)
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= 0x80 {
			n += 5
		}
	}
	return n
}

// FormatSize writes a byte count for people: "1 MiB", "8 KiB", "1500
// bytes".
func FormatSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + " GiB"
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	case n == 1:
		return "1 byte"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// sizeUnits are the units ParseSize knows, longest first so that "KiB"
// is not read as "B".
var sizeUnits = []struct {
	name string
	mul  int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
	{"kb", 1000}, {"mb", 1000 * 1000}, {"gb", 1000 * 1000 * 1000},
	{"bytes", 1}, {"byte", 1}, {"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"b", 1},
}

// ParseSize reads a byte count (a test file's max_body, a node's disk
// budget): "1048576", "512KiB", "1 MiB", "2MB", "64m".
// Units are case-insensitive; KiB, MiB, GiB (and K, M, G) are powers of
// 1024, KB, MB, GB powers of 1000.
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 || i > 19 {
		return 0, fmt.Errorf("%q is not a size: use a number of bytes or a unit, like 512KiB or 1MiB", s)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size: %v", s, err)
	}
	unit := strings.TrimSpace(t[i:])
	mul := int64(1)
	if unit != "" {
		mul = 0
		for _, u := range sizeUnits {
			if unit == u.name {
				mul = u.mul
				break
			}
		}
		if mul == 0 {
			return 0, fmt.Errorf("%q: unknown unit %q (use B, KiB, MiB, GiB, KB, MB or GB)", s, unit)
		}
	}
	if n > math.MaxInt64/mul {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mul, nil
}
