package bwe

import (
	"reflect"
	"testing"
)

func TestAllocate(t *testing.T) {
	cam := func(id string, maxLayer int) Demand {
		return Demand{ID: id, Layers: []int{150_000, 500_000, 1_500_000}, MaxLayer: maxLayer, Current: 2}
	}
	screen := Demand{ID: "screen", Priority: 1, Layers: []int{300_000, 0, 2_000_000}, MaxLayer: 2, Current: 2}
	audio := Demand{ID: "mic", Audio: true, Layers: []int{50_000}}
	layers := func(gs []Grant) map[string]int {
		m := map[string]int{}
		for _, g := range gs {
			m[g.ID] = g.Layer
		}
		return m
	}
	cases := []struct {
		name   string
		budget int
		ds     []Demand
		want   map[string]int
	}{
		{"plenty", 10_000_000, []Demand{audio, cam("a", 2), cam("b", 2)}, map[string]int{"mic": 0, "a": 2, "b": 2}},
		{"lowest layers first", 400_000, []Demand{cam("a", 2), cam("b", 2)}, map[string]int{"a": 0, "b": 0}},
		{"one step by priority order", 800_000, []Demand{cam("a", 2), cam("b", 2)}, map[string]int{"a": 1, "b": 0}},
		{"requested maximum", 10_000_000, []Demand{cam("a", 0), cam("b", 1)}, map[string]int{"a": 0, "b": 1}},
		{"audio is never cut; one video stays alive", 10_000, []Demand{audio, cam("a", 2)}, map[string]int{"mic": 0, "a": 0}},
		{"screen share before camera", 500_000, []Demand{cam("a", 2), screen}, map[string]int{"a": 0, "screen": 0}},
		{"screen share gets the next step", 2_400_000, []Demand{cam("a", 2), screen}, map[string]int{"a": 0, "screen": 2}},
		{"tracks that do not fit are paused", 200_000, []Demand{cam("a", 2), cam("b", 2)}, map[string]int{"a": 0, "b": -1}},
		{"paused by the subscriber", 10_000_000, []Demand{{ID: "p", Layers: []int{1, 2, 3}, MaxLayer: 2, Paused: true}}, map[string]int{"p": -1}},
		{"missing layers are skipped", 10_000_000, []Demand{{ID: "x", Layers: []int{0, 400_000, 0}, MaxLayer: 2}}, map[string]int{"x": 1}},
	}
	for _, c := range cases {
		if got := layers(Allocate(c.budget, c.ds)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
	gs := Allocate(400_000, []Demand{cam("a", 2), cam("b", 0)})
	if !gs[0].Limited || gs[1].Limited {
		t.Fatalf("limited flags %+v", gs)
	}
	// hysteresis: a layer is kept at its rate, but taken only with a margin
	onH := cam("a", 2)
	onH.Current = 1
	if l := layers(Allocate(520_000, []Demand{onH}))["a"]; l != 1 {
		t.Fatalf("current layer dropped although it fits: %d", l)
	}
	onQ := cam("a", 2)
	onQ.Current = 0
	if l := layers(Allocate(520_000, []Demand{onQ}))["a"]; l != 0 {
		t.Fatalf("upgraded without margin: %d", l)
	}
	if l := layers(Allocate(600_000, []Demand{onQ}))["a"]; l != 1 {
		t.Fatalf("not upgraded with margin: %d", l)
	}
}

func TestNextStep(t *testing.T) {
	ds := []Demand{
		{ID: "mic", Audio: true, Layers: []int{50_000}},
		{ID: "a", Layers: []int{150_000, 500_000, 1_500_000}, MaxLayer: 2, Current: 0},
	}
	gs := Allocate(400_000, ds)
	next, used := NextStep(ds, gs)
	if used != 200_000 || next != 625_000 { // 200k + 350k step + 15 % of 500k
		t.Fatalf("next %d used %d, want 625000 and 200000", next, used)
	}
	gs = Allocate(10_000_000, ds)
	if next, _ := NextStep(ds, gs); next != 0 {
		t.Fatalf("nothing limited, yet next step %d", next)
	}
	gs = Allocate(100_000, ds) // the video stays alive at its lowest layer
	if next, used := NextStep(ds, gs); next != 625_000 || used != 200_000 {
		t.Fatalf("next %d used %d", next, used)
	}
}
