package uitest

import (
	"context"
	"encoding/json"
	"testing"
)

// aboveTheFold fails the test for each element of sels that is missing
// or not entirely inside the viewport as the page first shows (no
// scrolling): what a person must see without looking for it.
func aboveTheFold(t *testing.T, ctx context.Context, page string, sels ...string) {
	t.Helper()
	list, _ := json.Marshal(sels)
	below := eval[[]string](t, ctx, `(() => {
		window.scrollTo(0, 0);
		const out = [];
		for (const s of `+string(list)+`) {
			const e = document.querySelector(s);
			if (!e) { out.push(s + ': missing'); continue; }
			const r = e.getBoundingClientRect();
			if (r.height === 0 || r.top < 0 || r.bottom > window.innerHeight || r.right > window.innerWidth) {
				out.push(s + ': at ' + Math.round(r.top) + '..' + Math.round(r.bottom) + ' px of a ' + window.innerHeight + ' px viewport');
			}
		}
		return out;
	})()`)
	for _, b := range below {
		t.Errorf("%s: not above the fold: %s", page, b)
	}
}
