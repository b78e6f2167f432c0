package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"
)

// Check implements `qiao check-config --config FILE`. A valid file prints
// a summary to out and returns 0 (deprecated keys are printed to errOut
// as "FILE:LINE: PATH: message (warning)"). Otherwise every problem is printed to
// errOut, one per line as "FILE:LINE: PATH: message", and Check returns
// 1; a missing or unreadable file is one line saying so. Secrets are
// never printed.
func Check(out, errOut io.Writer, path string, types ConnectorTypes) int {
	cfg, err := Load(path, types)
	if err != nil {
		var errs Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				fmt.Fprintln(errOut, e.Error())
			}
		} else if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
			fmt.Fprintf(errOut, "%s: cannot read config file: %s\n", path, pe.Err)
		} else {
			fmt.Fprintf(errOut, "%s: %s\n", path, err)
		}
		return 1
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(errOut, "%s (warning)\n", w.Error())
	}
	cfg.WriteSummary(out, path)
	return 0
}

// WriteSummary prints a short, secret-free description of the
// configuration: issuer, listen address, store, keys, each connector with
// its callback URL and each client.
func (c *Config) WriteSummary(w io.Writer, path string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s: configuration is valid\n", path)
	fmt.Fprintf(tw, "issuer:\t%s\n", c.Issuer)
	listen := c.HTTP.Listen
	if c.HTTP.TLSCert != "" {
		listen += " (TLS)"
	}
	fmt.Fprintf(tw, "listen:\t%s\n", listen)
	fmt.Fprintf(tw, "store:\t%s\n", c.storeSummary())
	fmt.Fprintf(tw, "keys:\t%s, rotated every %s\n", c.Keys.Algorithm, shortDuration(c.Keys.RotateEvery))
	tw.Flush()

	fmt.Fprintf(w, "connectors (%d):\n", len(c.Connectors))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, conn := range c.Connectors {
		callback := c.CallbackURL(conn.ID)
		if conn.TokenEndpointOnly() {
			callback = "(token endpoint only, no callback)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", conn.ID, conn.Type, callback)
	}
	tw.Flush()

	fmt.Fprintf(w, "clients (%d):\n", len(c.Clients))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, cl := range c.Clients {
		kind := "confidential"
		if cl.Public() {
			kind = "public"
		}
		plural := "s"
		if len(cl.RedirectURIs) == 1 {
			plural = ""
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d redirect URI%s\n", cl.ID, kind, len(cl.RedirectURIs), plural)
	}
	tw.Flush()
}

// storeSummary names the store without any credential: the SQLite path,
// or the PostgreSQL host and database taken from the DSN.
func (c *Config) storeSummary() string {
	if c.Storage.Type != "postgres" {
		return "sqlite " + c.Storage.SQLite.Path
	}
	dsn := c.Storage.Postgres.DSN
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		target := u.Host + u.Path
		if target == "" {
			return "postgres"
		}
		return "postgres " + target
	}
	kv := keywordValues(dsn)
	target := kv["host"]
	if kv["port"] != "" {
		target += ":" + kv["port"]
	}
	if kv["dbname"] != "" {
		target += "/" + kv["dbname"]
	}
	if target == "" {
		return "postgres"
	}
	return "postgres " + target
}

// keywordValues parses a libpq keyword/value connection string
// (host=db port=5432 password='a b'), honouring quotes and backslash
// escapes so that a quoted value is never split into other keywords. It
// returns nil when the string does not have that form.
func keywordValues(s string) map[string]string {
	kv := map[string]string{}
	i := 0
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n') {
			i++
		}
		if i == len(s) {
			return kv
		}
		eq := strings.IndexByte(s[i:], '=')
		if eq <= 0 {
			return nil
		}
		key := strings.TrimSpace(s[i : i+eq])
		if strings.ContainsAny(key, " \t'\\") {
			return nil
		}
		i += eq + 1
		for i < len(s) && s[i] == ' ' {
			i++
		}
		var v strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			for ; i < len(s) && s[i] != '\''; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				v.WriteByte(s[i])
			}
			if i == len(s) {
				return nil
			}
			i++
		} else {
			for ; i < len(s) && s[i] != ' ' && s[i] != '\t' && s[i] != '\n'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				v.WriteByte(s[i])
			}
		}
		kv[key] = v.String()
	}
}

// shortDuration prints 720h rather than 720h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
