package config

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ConnectorConfig is one connector type's own settings: the value a
// connector's `config:` block decodes into, a pointer to a struct whose
// exported fields carry yaml tags (string, bool, int, time.Duration,
// []string, map[string]string or a nested struct of the same). The
// parser decodes the block strictly, with ${VAR} expansion, then calls
// Validate.
//
// Validate reports every problem at once (errors.Join). An error with the
// methods ConfigField() string and ConfigMessage() string (see
// connectors.FieldError) names a key relative to the block, such as
// "client_secret" or "claims.name"; the parser reports it as
// FILE:LINE: connectors[N].config.KEY: message, at the key's line (or the
// block's, for a missing key). "required field is missing" for a key
// that is present with an empty value reads "must not be empty". Any
// other error is reported at the block. A key already reported by the
// parser (a value of the wrong kind, an unset variable) is not reported
// twice.
type ConnectorConfig interface {
	Validate() error
}

// ConnectorType is one kind of connector: the name a configuration file
// gives in `type:` and a function returning an empty config to decode the
// connector's `config:` block into.
type ConnectorType struct {
	Name string
	New  func() ConnectorConfig
}

// ConnectorTypes is the registry of connector types, in the order error
// messages list them. The command (cmd/qiao) owns it; this package names
// no provider.
type ConnectorTypes []ConnectorType

func (ts ConnectorTypes) lookup(name string) (ConnectorType, bool) {
	for _, t := range ts {
		if t.Name == name {
			return t, true
		}
	}
	return ConnectorType{}, false
}

func (ts ConnectorTypes) names() []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}

// tokenEndpointOnly is a connector config whose connector signs in at the
// token endpoint only (a mini-program): no browser, no callback URL.
type tokenEndpointOnly interface {
	TokenEndpointOnly() bool
}

// fieldError is a Validate problem that names a key of the block.
type fieldError interface {
	ConfigField() string
	ConfigMessage() string
}

var durationType = reflect.TypeOf(time.Duration(0))

// decode reads the mapping n (at path, reported at line when absent) into
// the struct v points to.
func (p *parser) decode(n *yaml.Node, path string, line int, v reflect.Value) {
	v = v.Elem()
	t := v.Type()
	var keys []string
	fields := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		keys = append(keys, name)
		fields[name] = i
	}
	m := p.mapping(n, path, line, keys...)
	for _, key := range keys {
		if !m.has(key) {
			continue
		}
		fv := v.Field(fields[key])
		switch {
		case fv.Type() == durationType:
			fv.SetInt(int64(p.duration(m, key, 0)))
		case fv.Kind() == reflect.String:
			if s, ok := p.str(m, key); ok {
				fv.SetString(s)
			}
		case fv.Kind() == reflect.Bool:
			fv.SetBool(p.boolean(m, key, false))
		case fv.Kind() == reflect.Int:
			if s, ok := p.str(m, key); ok {
				if n, err := strconv.Atoi(s); err != nil {
					p.errorf(m.lines[key], join(m.path, key), "must be a whole number")
				} else {
					fv.SetInt(int64(n))
				}
			}
		case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.String:
			values, _, _ := p.strings(m, key)
			fv.Set(reflect.ValueOf(values).Convert(fv.Type()))
		case fv.Kind() == reflect.Map && fv.Type().Key().Kind() == reflect.String && fv.Type().Elem().Kind() == reflect.String:
			if values := p.stringMap(m, key); values != nil {
				fv.Set(reflect.ValueOf(values).Convert(fv.Type()))
			}
		case fv.Kind() == reflect.Struct:
			p.decode(m.value[key], join(m.path, key), m.lineOf(key), fv.Addr())
		default:
			p.errorf(m.lines[key], join(m.path, key), "cannot be read (unsupported field type %s)", fv.Type())
		}
	}
}

// stringMap is the mapping under key as strings (any keys, each once).
func (p *parser) stringMap(m *mapping, key string) map[string]string {
	n, path := m.value[key], join(m.path, key)
	if n.Kind != yaml.MappingNode {
		p.errorf(m.lines[key], path, "must be a mapping")
		return nil
	}
	out := map[string]string{}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
			p.errorf(k.Line, path, "keys must be strings")
			continue
		}
		if first, dup := seen[k.Value]; dup {
			p.errorf(k.Line, join(path, k.Value), "duplicate key (first at line %d)", first)
			continue
		}
		seen[k.Value] = v.Line
		if s, ok := p.scalar(resolve(v), v.Line, join(path, k.Value)); ok {
			out[k.Value] = s
		}
	}
	return out
}

// connectorBlock decodes a connector's config: block with its type and
// reports what the type's Validate finds.
func (p *parser) connectorBlock(m *mapping, typ ConnectorType) ConnectorConfig {
	cc := typ.New()
	rv := reflect.ValueOf(cc)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		p.errorf(m.lines["config"], join(m.path, "config"), "connector type %s has no readable configuration", typ.Name)
		return nil
	}
	path := join(m.path, "config")
	before := len(p.errs)
	p.decode(m.value["config"], path, m.lineOf("config"), rv)
	if m.value["config"].Kind != yaml.MappingNode {
		return nil // reported by decode
	}
	reported := map[string]bool{}
	for _, e := range p.errs[before:] {
		reported[e.Path] = true
	}
	err := cc.Validate()
	if err == nil {
		return cc
	}
	for _, e := range leaves(err) {
		var fe fieldError
		if !errors.As(e, &fe) {
			p.errorf(m.lines["config"], path, "%s", e)
			continue
		}
		full := join(path, fe.ConfigField())
		if underReported(reported, full) {
			continue
		}
		line, present := fieldLine(m.value["config"], fe.ConfigField())
		msg := fe.ConfigMessage()
		if present && msg == "required field is missing" {
			msg = "must not be empty"
		}
		p.errorf(line, full, "%s", msg)
	}
	return cc
}

// underReported reports whether the parser already reported full or a key
// it lies under ("claims" for "claims.email", "scopes" for "scopes[1]"):
// a value of the wrong kind is one problem, not one per key inside it.
func underReported(reported map[string]bool, full string) bool {
	for p := full; p != ""; {
		if reported[p] {
			return true
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			return false
		}
		p = p[:i]
	}
	return false
}

// leaves flattens joined errors.
func leaves(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leaves(e)...)
		}
		return out
	}
	return []error{err}
}

// fieldLine is the line of the value at the dotted key path under the
// mapping n ("claims.name", "scopes[1]"), and whether it is there with a
// non-null value; for an absent key, the line of the deepest mapping on
// the way.
func fieldLine(n *yaml.Node, field string) (int, bool) {
	n = resolve(n)
	line := n.Line
	for _, part := range strings.Split(field, ".") {
		key, idx := part, -1
		if open := strings.IndexByte(part, '['); open > 0 && strings.HasSuffix(part, "]") {
			if i, err := strconv.Atoi(part[open+1 : len(part)-1]); err == nil {
				key, idx = part[:open], i
			}
		}
		if n == nil || n.Kind != yaml.MappingNode {
			return line, false
		}
		line = n.Line
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if resolve(n.Content[i]).Value == key {
				next = n.Content[i+1]
				line = next.Line
			}
		}
		if next == nil {
			return n.Line, false
		}
		n = resolve(next)
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return line, false
			}
			line = n.Content[idx].Line
			n = resolve(n.Content[idx])
		}
	}
	return line, !isNull(n)
}
