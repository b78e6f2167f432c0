package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"slices"
	"strconv"
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
// configuration: issuer, listen address, store, keys (RS256 always among
// them), the abuse limits, each connector with its callback URL and each
// client.
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
	fmt.Fprintf(tw, "keys:\t%s by default, rotated every %s\n", c.Keys.Algorithm, shortDuration(c.Keys.RotateEvery))
	if c.Keys.Algorithm == "RS256" {
		fmt.Fprintf(tw, "\tthe RS256 key is always kept (OpenID Connect requires it)\n")
	} else {
		fmt.Fprintf(tw, "\tan RS256 key is always kept too (OpenID Connect requires it)\n")
	}
	if algs := c.clientAlgorithms(); len(algs) > 0 {
		fmt.Fprintf(tw, "\tand a key for %s, which clients ask for\n", strings.Join(algs, ", "))
	}
	tw.Flush()

	fmt.Fprintf(w, "limits (requests per second, burst):\n")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	l := c.Limits
	fmt.Fprintf(tw, "  /auth\t%s\n", l.Auth.summary(true))
	fmt.Fprintf(tw, "  /token\t%s\n", l.Token.summary(true))
	fmt.Fprintf(tw, "  /callback\t%s\n", l.Callback.summary(false))
	fmt.Fprintf(tw, "  account\t%s\n", l.Account.summary(true))
	if l.ClientAuth.Failures > 0 {
		fmt.Fprintf(tw, "  client auth\ta backoff after %d failures in a row, up to %s\n", l.ClientAuth.Failures, shortDuration(l.ClientAuth.MaxBackoff))
	} else {
		fmt.Fprintf(tw, "  client auth\tno backoff\n")
	}
	exempt := make([]string, 0, len(l.Exempt))
	for _, p := range l.Exempt {
		if p.IsSingleIP() {
			exempt = append(exempt, p.Addr().String())
		} else {
			exempt = append(exempt, p.String())
		}
	}
	if len(exempt) == 0 {
		exempt = append(exempt, "none")
	}
	fmt.Fprintf(tw, "  exempt\t%s\n", strings.Join(exempt, ", "))
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

// clientAlgorithms are the ID token algorithms clients ask for beyond
// the default and RS256, in the order they first appear.
func (c *Config) clientAlgorithms() []string {
	var algs []string
	for _, cl := range c.Clients {
		a := c.IDTokenAlg(cl)
		if a != c.Keys.Algorithm && a != "RS256" && !slices.Contains(algs, a) {
			algs = append(algs, a)
		}
	}
	return algs
}

// summary describes a rate limit: "50 (200) per address, 500 (2000) per
// client", "off" for a bucket switched off.
func (r Rate) summary(perClient bool) string {
	bucket := func(rate float64, burst int, per string) string {
		if rate == 0 {
			return "off per " + per
		}
		return fmt.Sprintf("%s (%d) per %s", strconv.FormatFloat(rate, 'f', -1, 64), burst, per)
	}
	s := bucket(r.PerIP, r.PerIPBurst, "address")
	if perClient {
		s += ", " + bucket(r.PerClient, r.PerClientBurst, "client")
	}
	return s
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
