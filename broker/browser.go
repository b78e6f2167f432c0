package broker

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/qiaoidp/qiao/storage"
)

const (
	sessionCookie = "qiao_session"
	loginCookie   = "qiao_login"
	// loginTTL is how long an upstream login may take.
	loginTTL = 10 * time.Minute
)

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// randomString returns n uniformly random characters of [A-Za-z0-9]
// (WeChat's rule for state values). Bytes of 248 and above are dropped, so
// that every character is equally likely.
func randomString(n int) string {
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/4+1)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			panic(fmt.Sprintf("crypto/rand failed: %v", err)) // the platform is broken
		}
		for _, c := range buf {
			if c < 248 && len(out) < n { // 248 = 4 × 62
				out = append(out, alnum[c%62])
			}
		}
	}
	return string(out)
}

func newUserID() string {
	buf := make([]byte, 15)
	if _, err := rand.Read(buf); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return strings.ToLower(base32.StdEncoding.EncodeToString(buf))
}

// validState reports whether s looks like a state we issued.
func validState(s string) bool {
	if len(s) < 16 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(alnum, rune(s[i])) {
			return false
		}
	}
	return true
}

// mac keys a cookie value so the store never holds what the browser holds.
func (s *site) mac(label, v string) string {
	m := hmac.New(sha256.New, s.cookieKey)
	m.Write([]byte(label))
	m.Write([]byte{0})
	m.Write([]byte(v))
	return hex.EncodeToString(m.Sum(nil))
}

// cookieName is the name a cookie has on the wire. Under https the
// session and login cookies carry the __Host- prefix: the browser then
// accepts them only from this host, over https, for the whole host, so a
// sibling subdomain or a network attacker cannot plant them (login CSRF).
func (s *site) cookieName(name string) string {
	if s.secure {
		return "__Host-" + name
	}
	return name
}

func (s *site) cookie(r *http.Request, name string) (*http.Cookie, error) {
	return r.Cookie(s.cookieName(name))
}

func (s *site) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	path := s.prefix + "/"
	if s.secure {
		path = "/" // required by the __Host- prefix
	}
	http.SetCookie(w, &http.Cookie{
		Name:     s.cookieName(name),
		Value:    value,
		Path:     path,
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   s.secure,
		SameSite: http.SameSiteLaxMode,
	})
}

func isWeChatBrowser(r *http.Request) bool {
	return strings.Contains(r.UserAgent(), "MicroMessenger")
}

func isMobile(r *http.Request) bool {
	ua := r.UserAgent()
	return strings.Contains(ua, "Mobile") || strings.Contains(ua, "Android") || strings.Contains(ua, "iPhone")
}

// ------------------------------------------------------ browser session

// sessionData is what a browser session remembers besides the user.
type sessionData struct {
	Consents []string `json:"consents,omitempty"` // clients the user approved
}

type browserSession struct {
	storage.Session
	data sessionData
}

// currentSession returns the browser's live session, or nil.
func (s *site) currentSession(r *http.Request) (*browserSession, error) {
	c, err := s.cookie(r, sessionCookie)
	if err != nil || c.Value == "" {
		return nil, nil
	}
	stored, err := s.sessions.GetSession(r.Context(), s.mac("session", c.Value))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	bs := &browserSession{Session: stored}
	if len(stored.Data) > 0 {
		_ = json.Unmarshal(stored.Data, &bs.data)
	}
	return bs, nil
}

// newBrowserSession builds a fresh session for user (a new id on every
// login, so a fixed cookie cannot be planted), keeping the consents of
// the browser's old session of the same user, and returns it with its
// cookie value. The caller stores it (storage.LoginCompletion).
//
// connectorID and subject name the identity that signed in: unbinding it
// ends the session.
func (s *site) newBrowserSession(old *browserSession, userID, connectorID, subject string, authTime time.Time) (*browserSession, string) {
	value := randomString(43)
	bs := &browserSession{Session: storage.Session{
		ID:          s.mac("session", value),
		UserID:      userID,
		ConnectorID: connectorID,
		AuthTime:    authTime,
		ExpiresAt:   authTime.Add(s.sessionTTL),

		IdentitySubject: subject,
	}}
	if old != nil && old.UserID == userID {
		bs.data = old.data
	}
	bs.Data, _ = json.Marshal(bs.data)
	return bs, value
}

func (s *site) saveSession(ctx context.Context, sess *browserSession) error {
	sess.Data, _ = json.Marshal(sess.data)
	return s.sessions.UpdateSession(ctx, sess.Session)
}
