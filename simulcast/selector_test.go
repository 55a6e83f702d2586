package simulcast

import "testing"

func TestChoose(t *testing.T) {
	all := []bool{true, true, true}
	cases := []struct {
		name    string
		active  []bool
		max     int
		paused  bool
		current int
		want    Choice
	}{
		{"best", all, 2, false, -1, Choice{2, ReasonBest}},
		{"limited", all, 1, false, 2, Choice{1, ReasonPreference}},
		{"lowest", all, 0, false, 2, Choice{0, ReasonPreference}},
		{"top layer not sent", []bool{true, true, false}, 2, false, 2, Choice{1, ReasonBest}},
		{"only top sent but limited", []bool{false, false, true}, 0, false, -1, Choice{2, ReasonPreference}},
		{"gap below limit", []bool{true, false, true}, 1, false, 2, Choice{0, ReasonPreference}},
		{"paused", all, 2, true, 2, Choice{-1, ReasonPaused}},
		{"nothing sent", []bool{false, false, false}, 2, false, 1, Choice{1, ReasonNoMedia}},
		{"single layer", []bool{true}, 2, false, -1, Choice{0, ReasonBest}},
	}
	for _, c := range cases {
		if got := Choose(c.active, c.max, ReasonPreference, c.paused, c.current); got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}
