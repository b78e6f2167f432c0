package config

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// kitchenSink is a connector type's config with every kind of field the
// parser decodes.
type kitchenSink struct {
	Issuer  string            `yaml:"issuer"`
	Scopes  []string          `yaml:"scopes"`
	Extra   map[string]string `yaml:"extra"`
	Claims  sinkClaims        `yaml:"claims"`
	Retries int               `yaml:"retries"`
	Wait    time.Duration     `yaml:"wait"`
	PKCE    bool              `yaml:"pkce"`
	Ignored string            // no tag: not a key
}

type sinkClaims struct {
	Name  string `yaml:"name"`
	Email string `yaml:"email"`
}

func (k *kitchenSink) Validate() error {
	var errs []error
	if k.Issuer == "" {
		errs = append(errs, testFieldError{"issuer", "required field is missing"})
	}
	if k.Claims.Name == "sub" {
		errs = append(errs, testFieldError{"claims.name", "must not be sub"})
	}
	if k.Claims.Email == "" {
		errs = append(errs, testFieldError{"claims.email", "required field is missing"})
	}
	if k.Retries > 3 {
		errs = append(errs, errors.New("too many retries for this provider"))
	}
	return errors.Join(errs...)
}

type testFieldError struct{ field, msg string }

func (e testFieldError) Error() string         { return e.field + ": " + e.msg }
func (e testFieldError) ConfigField() string   { return e.field }
func (e testFieldError) ConfigMessage() string { return e.msg }

func sinkTypes() ConnectorTypes {
	return append(testTypes(), ConnectorType{Name: "sink", New: func() ConnectorConfig { return new(kitchenSink) }})
}

func TestConnectorBlockDecodesEveryKindOfField(t *testing.T) {
	src := head + `  - id: sink
    type: sink
    config:
      issuer: ${ISSUER}
      scopes: [openid, "${SCOPE}"]
      extra: {a: "1", b: "${SCOPE}"}
      claims: {name: nick, email: mail}
      retries: 2
      wait: 1m30s
      pkce: true
`
	cfg, err := Parse([]byte(src), "t.yaml", envOf("QIAO_SECRET", testSecret, "ISSUER", "https://up.example", "SCOPE", "email"), sinkTypes())
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Connectors[1].Config.(*kitchenSink)
	want := &kitchenSink{Issuer: "https://up.example", Scopes: []string{"openid", "email"}, Extra: map[string]string{"a": "1", "b": "email"},
		Claims: sinkClaims{Name: "nick", Email: "mail"}, Retries: 2, Wait: 90 * time.Second, PKCE: true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded %+v, want %+v", got, want)
	}
}

func TestConnectorBlockErrorsNameTheirLine(t *testing.T) {
	src := head + `  - id: sink
    type: sink
    config:
      scopes: openid
      claims:
        name: sub
        colour: red
      retries: many
      wait: 3
      Ignored: x
  - id: sink2
    type: sink
    config: {issuer: "", retries: 9, claims: {email: m}}
`
	// Sorted by line; on one line, in the order found: the parser's own
	// problems before Validate's. A missing key is reported at the first
	// line of its mapping, as everywhere in the file.
	want := []string{
		"t.yaml:10: connectors[1].config.scopes: must be a list",
		"t.yaml:10: connectors[1].config.issuer: required field is missing",
		"t.yaml:12: connectors[1].config.claims.name: must not be sub",
		"t.yaml:12: connectors[1].config.claims.email: required field is missing",
		"t.yaml:13: connectors[1].config.claims.colour: unknown key",
		"t.yaml:14: connectors[1].config.retries: must be a whole number",
		`t.yaml:15: connectors[1].config.wait: invalid duration "3": use Go syntax like 720h or 1h30m`,
		"t.yaml:16: connectors[1].config.Ignored: unknown key",
		"t.yaml:19: connectors[2].config.issuer: must not be empty",
		"t.yaml:19: connectors[2].config: too many retries for this provider",
	}
	var got []string
	if _, err := Parse([]byte(src), "t.yaml", envOf("QIAO_SECRET", testSecret), sinkTypes()); err != nil {
		got = strings.Split(err.Error(), "\n")
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestConnectorBlockNumberOutOfRangeIsNotPassedOn: a whole number too
// large for an int is reported once, and Validate does not see the
// clamped value (which would add a second, misleading problem).
func TestConnectorBlockNumberOutOfRangeIsNotPassedOn(t *testing.T) {
	src := head + `  - id: sink
    type: sink
    config: {issuer: i, claims: {email: m}, retries: 99999999999999999999999}
`
	_, err := Parse([]byte(src), "t.yaml", envOf("QIAO_SECRET", testSecret), sinkTypes())
	if want := "t.yaml:9: connectors[1].config.retries: must be a whole number"; err == nil || err.Error() != want {
		t.Errorf("error %v, want only %q", err, want)
	}
}

// TestConnectorBlockValueOfTheWrongKindIsOneProblem: a nested block that
// is not a mapping is reported once, not again for each key Validate
// misses inside it.
func TestConnectorBlockValueOfTheWrongKindIsOneProblem(t *testing.T) {
	src := head + `  - id: sink
    type: sink
    config: {issuer: i, claims: x}
`
	_, err := Parse([]byte(src), "t.yaml", envOf("QIAO_SECRET", testSecret), sinkTypes())
	if want := "t.yaml:9: connectors[1].config.claims: must be a mapping"; err == nil || err.Error() != want {
		t.Errorf("error %v, want only %q", err, want)
	}
}

// listChecker reports a problem with one element of a list.
type listChecker struct {
	Scopes []string `yaml:"scopes"`
}

func (l *listChecker) Validate() error {
	for i, s := range l.Scopes {
		if strings.Contains(s, " ") {
			return testFieldError{fmt.Sprintf("scopes[%d]", i), "must be one scope"}
		}
	}
	return nil
}

func TestConnectorBlockErrorInAListNamesTheElementsLine(t *testing.T) {
	src := head + `  - id: list
    type: list
    config:
      scopes:
        - openid
        - two words
`
	types := append(testTypes(), ConnectorType{Name: "list", New: func() ConnectorConfig { return new(listChecker) }})
	_, err := Parse([]byte(src), "t.yaml", envOf("QIAO_SECRET", testSecret), types)
	if want := "t.yaml:12: connectors[1].config.scopes[1]: must be one scope"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
}

func TestDeprecatedLinkingKeysWarnInCheckConfig(t *testing.T) {
	t.Setenv("QIAO_SECRET", testSecret)
	path := writeFile(t, "qiao.yaml", head+"linking: {qq_unionid: true}\n")
	var out, errOut bytes.Buffer
	if code := Check(&out, &errOut, path, testTypes()); code != 0 {
		t.Fatalf("Check = %d, want 0: %s", code, errOut.String())
	}
	want := path + ":7: linking.qq_unionid: deprecated: set link_by_unionid on each connector instead (warning)\n"
	if errOut.String() != want {
		t.Errorf("stderr = %q, want %q", errOut.String(), want)
	}
	cfg, err := Load(path, testTypes())
	if err != nil || !reflect.DeepEqual(cfg.Linking, map[string]bool{"qq": true}) {
		t.Errorf("Linking = %v (%v), want qq: true", cfg.Linking, err)
	}
}

func TestConnectorNamesAndLinking(t *testing.T) {
	src := head + `  - id: qq
    type: qq
    names: {en: QQ Login, zh-CN: QQ登录}
    link_by_unionid: true
    config: {client_id: "1", client_secret: s}
`
	cfg, err := Parse([]byte(src), "t.yaml", envOf("QIAO_SECRET", testSecret), testTypes())
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Connectors[1]
	if c.Name != "" || !reflect.DeepEqual(c.Names, map[string]string{"en": "QQ Login", "zh-CN": "QQ登录"}) || c.LinkByUnionID == nil || !*c.LinkByUnionID {
		t.Errorf("connector = %+v, want names and link_by_unionid true", c)
	}
	if cfg.Connectors[0].LinkByUnionID != nil {
		t.Errorf("link_by_unionid absent should be nil")
	}
	bad := strings.Replace(src, "zh-CN: QQ登录", "fr: QQ", 1)
	want := []string{"t.yaml:9: connectors[1].names.fr: unknown key"}
	if got := errorLines(t, bad, envOf("QIAO_SECRET", testSecret)); !reflect.DeepEqual(got, want) {
		t.Errorf("errors = %q, want %q", got, want)
	}
}
