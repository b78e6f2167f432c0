package config

import (
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// parser walks the YAML node tree and collects every problem it finds.
type parser struct {
	file     string
	env      func(string) (string, bool)
	types    ConnectorTypes
	errs     Errors
	warnings Errors
}

func (p *parser) errorf(line int, path, format string, args ...any) {
	p.errs = append(p.errs, Error{File: p.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) warnf(line int, path, format string, args ...any) {
	p.warnings = append(p.warnings, Error{File: p.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// mapping is a YAML mapping whose keys have been checked against the keys
// the schema allows.
type mapping struct {
	path  string
	line  int  // reported for missing fields
	bad   bool // not a mapping (already reported): report nothing missing
	value map[string]*yaml.Node
	lines map[string]int // line of each value as written (before alias resolution)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// mapping checks that n (which may be absent: nil or null) is a mapping
// with only known keys, each at most once. line is where problems with an
// absent mapping are reported.
func (p *parser) mapping(n *yaml.Node, path string, line int, known ...string) *mapping {
	m := &mapping{path: path, line: line, value: map[string]*yaml.Node{}, lines: map[string]int{}}
	if isNull(n) {
		return m
	}
	raw := n
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.errorf(raw.Line, path, "must be a mapping")
		m.bad = true
		return m
	}
	m.line = n.Line
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errorf(n.Content[i].Line, path, "keys must be strings")
			continue
		}
		key := k.Value
		switch {
		case k.Tag == "!!merge":
			p.errorf(k.Line, join(path, key), "merge keys (<<) are not supported")
		case !contains(known, key):
			p.errorf(k.Line, join(path, key), "unknown key")
		case m.value[key] != nil:
			p.errorf(k.Line, join(path, key), "duplicate key (first at line %d)", m.lines[key])
		default:
			m.value[key] = resolve(v)
			m.lines[key] = v.Line
		}
	}
	return m
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// has reports whether key is present with a non-null value.
func (m *mapping) has(key string) bool { return !isNull(m.value[key]) }

// emptyList reports whether key holds a list with no elements.
func (m *mapping) emptyList(key string) bool {
	n := m.value[key]
	return n != nil && n.Kind == yaml.SequenceNode && len(n.Content) == 0
}

// lineOf is the line of key's value, or of the mapping when key is absent.
func (m *mapping) lineOf(key string) int {
	if m.has(key) {
		return m.lines[key]
	}
	return m.line
}

// sub is the mapping under key (possibly absent).
func (p *parser) sub(m *mapping, key string, known ...string) *mapping {
	return p.mapping(m.value[key], join(m.path, key), m.lineOf(key), known...)
}

// scalar returns the text of a scalar node, with environment variables
// expanded in string scalars. ok is false when n is absent or when a
// problem was reported.
func (p *parser) scalar(n *yaml.Node, line int, path string) (string, bool) {
	if isNull(n) {
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		p.errorf(line, path, "must be a single value, not a %s", kindName(n.Kind))
		return "", false
	}
	if n.Tag != "!!str" {
		return n.Value, true
	}
	s, err := expand(n.Value, p.env)
	if err != nil {
		p.errorf(line, path, "%s", err)
		return "", false
	}
	return s, true
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	default:
		return "document"
	}
}

// str is the string value of key; ok is false when key is absent or bad.
func (p *parser) str(m *mapping, key string) (string, bool) {
	return p.scalar(m.value[key], m.lines[key], join(m.path, key))
}

// strDefault is the string value of key, or def when key is absent.
func (p *parser) strDefault(m *mapping, key, def string) string {
	if !m.has(key) {
		return def
	}
	s, _ := p.str(m, key)
	return s
}

// required is the non-empty string value of key; a missing key is
// reported at the mapping's line.
func (p *parser) required(m *mapping, key string) (string, bool) {
	if !m.has(key) {
		if !m.bad {
			p.errorf(m.line, join(m.path, key), "required field is missing")
		}
		return "", false
	}
	s, ok := p.str(m, key)
	if ok && s == "" {
		p.errorf(m.lines[key], join(m.path, key), "must not be empty")
		return "", false
	}
	return s, ok
}

// oneOf is the value of key, which must be one of allowed; def when absent.
func (p *parser) oneOf(m *mapping, key, def string, allowed ...string) string {
	s, ok := p.str(m, key)
	if !ok {
		return def
	}
	if !contains(allowed, s) {
		p.errorf(m.lines[key], join(m.path, key), "%q is not one of %s", s, strings.Join(allowed, ", "))
		return def
	}
	return s
}

// boolean is the value of key as true or false; def when absent.
func (p *parser) boolean(m *mapping, key string, def bool) bool {
	s, ok := p.str(m, key)
	if !ok {
		return def
	}
	switch strings.ToLower(s) {
	case "true":
		return true
	case "false":
		return false
	}
	p.errorf(m.lines[key], join(m.path, key), "must be true or false")
	return def
}

// duration is the value of key as a positive Go duration; def when absent.
func (p *parser) duration(m *mapping, key string, def time.Duration) time.Duration {
	s, ok := p.str(m, key)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		p.errorf(m.lines[key], join(m.path, key), "invalid duration %q: use Go syntax like 720h or 1h30m", s)
		return def
	}
	if d <= 0 {
		p.errorf(m.lines[key], join(m.path, key), "duration must be positive, got %q", s)
		return def
	}
	return d
}

// item is one element of a list: its value, where it is and its path.
type item struct {
	n    *yaml.Node
	line int
	path string
}

// list returns the elements of the list under key; present is false when
// key is absent or null (an explicitly empty list is present).
func (p *parser) list(m *mapping, key string) (items []item, present bool) {
	if !m.has(key) {
		return nil, false
	}
	n, path := m.value[key], join(m.path, key)
	if n.Kind != yaml.SequenceNode {
		p.errorf(m.lines[key], path, "must be a list")
		return nil, true
	}
	for i, c := range n.Content {
		items = append(items, item{n: resolve(c), line: c.Line, path: index(path, i)})
	}
	return items, true
}

// strings returns the non-empty string elements of the list under key,
// with the item each came from.
func (p *parser) strings(m *mapping, key string) (values []string, from []item, present bool) {
	items, present := p.list(m, key)
	for _, it := range items {
		s, ok := p.scalar(it.n, it.line, it.path)
		if !ok {
			if isNull(it.n) {
				p.errorf(it.line, it.path, "must not be empty")
			}
			continue
		}
		if s == "" {
			p.errorf(it.line, it.path, "must not be empty")
			continue
		}
		values = append(values, s)
		from = append(from, it)
	}
	return values, from, present
}
