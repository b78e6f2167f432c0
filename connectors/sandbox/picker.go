package sandbox

import (
	"html/template"
	"net/http"
	"net/url"
)

// The picker's links come back to the authorize page with one of these:
// sandbox_person=ID approves as that person, sandbox_deny=1 refuses.
const (
	personParam = "sandbox_person"
	denyParam   = "sandbox_deny"
)

// pickerPerson is one person on a simulator's login page.
type pickerPerson struct{ ID, Name, Avatar, Href string }

// pickerLinks lists the persons of a picker page, each with its link, and
// returns the deny link too. link(param, value) is the URL back to the
// authorize page with param=value; avatar gives a person's avatar URL.
func pickerLinks(persons []Person, avatar func(Person) string, link func(param, value string) string) ([]pickerPerson, string) {
	var list []pickerPerson
	for _, p := range persons {
		list = append(list, pickerPerson{ID: p.ID, Name: p.Name, Avatar: avatar(p), Href: link(personParam, p.ID)})
	}
	return list, link(denyParam, "1")
}

// formLink makes the picker links of an authorize page that reads its
// parameters from form: the form without the picker's own parameters,
// and param=value (nothing for param ""). The links are relative, so that the simulator also
// works mounted under a prefix.
func formLink(form url.Values) func(param, value string) string {
	return func(param, value string) string {
		v := url.Values{}
		for k, vs := range form {
			if k != personParam && k != denyParam {
				v[k] = vs
			}
		}
		if param != "" {
			v.Set(param, value)
		}
		return "authorize?" + v.Encode()
	}
}

// writePage answers with the page that template name of t renders.
func writePage(w http.ResponseWriter, status int, t *template.Template, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = t.ExecuteTemplate(w, name, data)
}
