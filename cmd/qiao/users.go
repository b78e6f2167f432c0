package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/qiaoidp/qiao/cmd/qiao/registry"
	"github.com/qiaoidp/qiao/config"
	"github.com/qiaoidp/qiao/storage"
)

// adminStore opens the configured store for an admin command.
func adminStore(ctx context.Context, cfgPath string, stderr io.Writer) (storage.Storage, bool) {
	cfg, err := config.Load(cfgPath, registry.Types())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, false
	}
	s, _, err := openStore(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "qiao:", err)
		return nil, false
	}
	return s, true
}

func cmdUsers(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("users "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file")
	after := fs.String("after", "", "list: start after this user id")
	limit := fs.Int("limit", 50, "list: users per page")
	// Accept flags before and after the positional arguments.
	var pos []string
	rest := args[1:]
	for {
		if err := fs.Parse(rest); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if *path == "" {
		fmt.Fprintf(stderr, "users %s: --config FILE is required\n", sub)
		return 2
	}
	want := map[string]int{"list": 0, "show": 1, "unbind": 2, "delete": 1, "merge": 2}
	n, ok := want[sub]
	if !ok {
		fmt.Fprintf(stderr, "users: unknown subcommand %q\n\n%s", sub, usage)
		return 2
	}
	if len(pos) != n {
		fmt.Fprintf(stderr, "users %s: expected %d argument(s), got %d\n\n%s", sub, n, len(pos), usage)
		return 2
	}
	if *limit <= 0 || *limit > 1000 {
		fmt.Fprintf(stderr, "users %s: --limit must be between 1 and 1000\n", sub)
		return 2
	}
	store, ok := adminStore(ctx, *path, stderr)
	if !ok {
		return 1
	}
	defer store.Close()
	var err error
	switch sub {
	case "list":
		err = usersList(ctx, store, stdout, *after, *limit)
	case "show":
		err = usersShow(ctx, store, stdout, pos[0])
	case "unbind":
		err = store.UnbindIdentity(ctx, pos[0], pos[1])
		adminAudit(ctx, store, "admin_unbind", pos[0], pos[1], err)
		if err == nil {
			fmt.Fprintf(stdout, "unbound %s from user %s and ended the sessions and tokens that came through it\n", pos[1], pos[0])
		}
	case "delete":
		err = store.DeleteUser(ctx, pos[0])
		adminAudit(ctx, store, "admin_delete", pos[0], "", err)
		if err == nil {
			fmt.Fprintf(stdout, "deleted user %s and revoked their tokens and sessions\n", pos[0])
		}
	case "merge":
		err = usersMerge(ctx, store, stdout, pos[0], pos[1])
	}
	var conflict *storage.MergeConflictError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &conflict):
		fmt.Fprint(stderr, mergeConflictMessage(ctx, store, pos[0], pos[1], conflict))
	case sub == "merge" && errors.Is(err, storage.ErrNotFound):
		fmt.Fprintf(stderr, "users merge: not found: both %s and %s must be existing user ids (see qiao users list)\n", pos[0], pos[1])
	case errors.Is(err, storage.ErrNotFound):
		fmt.Fprintf(stderr, "users %s: not found\n", sub)
	case errors.Is(err, storage.ErrLastIdentity):
		fmt.Fprintf(stderr, "users %s: refused: that is the user's last identity (delete the user instead)\n", sub)
	default:
		fmt.Fprintf(stderr, "users %s: %v\n", sub, err)
	}
	return 1
}

// usersMerge moves every identity of from to into and deletes from with
// its sessions and tokens; both users' audit trails record it.
func usersMerge(ctx context.Context, store storage.Storage, w io.Writer, from, into string) error {
	if from == into {
		return fmt.Errorf("FROM and INTO are the same user")
	}
	moved, err := store.MergeUsers(ctx, storage.Merge{From: from, Into: into})
	result := auditResult(err)
	var conflict *storage.MergeConflictError
	if errors.As(err, &conflict) {
		result = "refused_same_connector"
	}
	detail := "merged into " + into
	if err != nil {
		detail = "merge into " + into + " refused"
	}
	_ = store.AppendAudit(ctx, storage.AuditEvent{Time: time.Now().UTC(), Action: "admin_merge", UserID: from, IP: "cli", Result: result, Detail: detail})
	var conns []string
	for _, id := range moved {
		conns = append(conns, id.ConnectorID)
	}
	detail = fmt.Sprintf("absorbed user %s (identities: %s)", from, joinNonEmpty(conns...))
	if err != nil {
		detail = "absorbing " + from + " refused"
	}
	_ = store.AppendAudit(ctx, storage.AuditEvent{Time: time.Now().UTC(), Action: "admin_merge", UserID: into, IP: "cli", Result: result, Detail: detail})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "merged user %s into %s: moved %d identities (%s); deleted %s and revoked its tokens and sessions\n",
		from, into, len(moved), joinNonEmpty(conns...), from)
	return nil
}

// mergeConflictMessage explains a refused merge: which connector both
// users have, with each side's subject, and how to go on.
func mergeConflictMessage(ctx context.Context, store storage.Storage, from, into string, c *storage.MergeConflictError) string {
	subjects := func(user string) map[string]string {
		out := map[string]string{}
		ids, _ := store.ListIdentities(ctx, user)
		for _, id := range ids {
			out[id.ConnectorID] = id.Subject
		}
		return out
	}
	fs, is := subjects(from), subjects(into)
	var b strings.Builder
	fmt.Fprintf(&b, "users merge: refused: a user has at most one identity per connector, and both users have one of:\n")
	for _, conn := range c.Connectors {
		fmt.Fprintf(&b, "  %s: %s has subject %s, %s has subject %s\n", conn, from, fs[conn], into, is[conn])
	}
	fmt.Fprintf(&b, "Nothing was changed. Unbind the identity to drop first (qiao users unbind USER CONNECTOR), then merge again.\n")
	return b.String()
}

func auditResult(err error) string {
	switch {
	case err == nil:
		return "success"
	case errors.Is(err, storage.ErrNotFound):
		return "not_found"
	case errors.Is(err, storage.ErrLastIdentity):
		return "refused_last_identity"
	}
	return "failure"
}

func adminAudit(ctx context.Context, store storage.Storage, action, userID, connectorID string, err error) {
	result := "success"
	if err != nil {
		result = "failure"
		if errors.Is(err, storage.ErrNotFound) {
			result = "not_found"
		} else if errors.Is(err, storage.ErrLastIdentity) {
			result = "refused_last_identity"
		}
	}
	_ = store.AppendAudit(ctx, storage.AuditEvent{Time: time.Now().UTC(), Action: action, UserID: userID, ConnectorID: connectorID, IP: "cli", Result: result})
}

func usersList(ctx context.Context, store storage.Storage, w io.Writer, after string, limit int) error {
	users, err := store.ListUsers(ctx, after, limit)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCREATED\tIDENTITIES\tNAME")
	for _, u := range users {
		ids, err := store.ListIdentities(ctx, u.ID)
		if err != nil {
			return err
		}
		var conns []string
		name := ""
		for _, id := range ids {
			conns = append(conns, id.ConnectorID)
			if id.RealProfile && name == "" {
				name = id.DisplayName
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", esc(u.ID), u.CreatedAt.UTC().Format(time.RFC3339), esc(joinNonEmpty(conns...)), esc(name))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(users) == limit {
		fmt.Fprintf(w, "\nmore: qiao users list --after %s --limit %d\n", users[len(users)-1].ID, limit)
	}
	return nil
}

func usersShow(ctx context.Context, store storage.Storage, w io.Writer, id string) error {
	u, err := store.GetUser(ctx, id)
	if err != nil {
		return err
	}
	ids, err := store.ListIdentities(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "user     %s\ncreated  %s\n\nidentities:\n", esc(u.ID), u.CreatedAt.UTC().Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  CONNECTOR\tTYPE\tSUBJECT\tNAME\tBOUND\tLAST USED")
	for _, x := range ids {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", esc(x.ConnectorID), esc(x.ConnectorType), esc(x.Subject), esc(x.DisplayName),
			x.BoundAt.UTC().Format(time.RFC3339), x.LastUsedAt.UTC().Format(time.RFC3339))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	events, err := store.ListAudit(ctx, storage.AuditFilter{UserID: id, Limit: 20})
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "\nrecent activity:")
	return writeAudit(w, events)
}

func writeAudit(w io.Writer, events []storage.AuditEvent) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tACTION\tRESULT\tUSER\tCONNECTOR\tCLIENT\tIP\tDETAIL")
	for _, e := range events {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.UTC().Format(time.RFC3339), esc(e.Action), esc(e.Result),
			dash(e.UserID), dash(e.ConnectorID), dash(e.ClientID), dash(e.IP), esc(e.Detail))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return esc(s)
}

// esc prints s with its control characters (and the invisible ones that
// reorder text) escaped as \xHH or \uHHHH, and invalid UTF-8 as \xHH: a
// nickname or a detail that came from a provider or a request cannot move
// the cursor, recolour or rewrite the admin's terminal, or break a column.
func esc(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r < 0x80 && (r < 0x20 || r == 0x7f):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unicode.IsControl(r) || r == 0x200e || r == 0x200f || r == 0x061c || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

func cmdAudit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file")
	user := fs.String("user", "", "only this user's events")
	since := fs.String("since", "", "events at or after this time (RFC 3339, or a duration like 24h meaning that long ago)")
	until := fs.String("until", "", "events before this time (RFC 3339 or a duration ago)")
	limit := fs.Int("limit", 100, "at most this many events, newest first")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" {
		fmt.Fprintln(stderr, "audit: --config FILE is required")
		return 2
	}
	f := storage.AuditFilter{UserID: *user, Limit: *limit}
	var err error
	if f.Since, err = parseWhen(*since); err != nil {
		fmt.Fprintln(stderr, "audit: --since:", err)
		return 2
	}
	if f.Until, err = parseWhen(*until); err != nil {
		fmt.Fprintln(stderr, "audit: --until:", err)
		return 2
	}
	store, ok := adminStore(ctx, *path, stderr)
	if !ok {
		return 1
	}
	defer store.Close()
	events, err := store.ListAudit(ctx, f)
	if err != nil {
		fmt.Fprintln(stderr, "audit:", err)
		return 1
	}
	if err := writeAudit(stdout, events); err != nil {
		return 1
	}
	return 0
}

// parseWhen reads an RFC 3339 time or a duration meaning that long ago.
func parseWhen(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration", s)
}
