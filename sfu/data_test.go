package sfu

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestDataWireRoundTrip(t *testing.T) {
	up, err := AppendDataUp(nil, "cursor", []string{"PAONE", "PATWO"}, []byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseDataUp(up)
	if err != nil || d.Topic != "cursor" || !slices.Equal(d.To, []string{"PAONE", "PATWO"}) || string(d.Payload) != "payload" {
		t.Fatalf("parsed %+v, %v", d, err)
	}
	down := AppendDataDown(nil, "PAFROM", d.Topic, d.Payload)
	g, err := ParseDataDown(down)
	if err != nil || g.From != "PAFROM" || g.Topic != "cursor" || string(g.Payload) != "payload" {
		t.Fatalf("parsed %+v, %v", g, err)
	}
	// empty topic, no recipients, empty payload
	up, _ = AppendDataUp(nil, "", nil, nil)
	if d, err := ParseDataUp(up); err != nil || d.Topic != "" || d.To != nil || len(d.Payload) != 0 {
		t.Fatalf("parsed %+v, %v", d, err)
	}
	for _, bad := range [][]byte{nil, {2}, {1}, {1, 3, 'a'}, {1, 0, 1}, {1, 0, 1, 0}, {1, 0, 2, 1, 'a'}} {
		if _, err := ParseDataUp(bad); !errors.Is(err, ErrDataMalformed) {
			t.Errorf("ParseDataUp(%v): %v, want ErrDataMalformed", bad, err)
		}
	}
	if _, err := AppendDataUp(nil, string(make([]byte, 256)), nil, nil); !errors.Is(err, ErrDataMalformed) {
		t.Errorf("a 256-byte topic: %v", err)
	}
	if _, err := AppendDataUp(nil, "", []string{""}, nil); !errors.Is(err, ErrDataMalformed) {
		t.Errorf("an empty recipient: %v", err)
	}
}

func FuzzParseDataUp(f *testing.F) {
	seed, _ := AppendDataUp(nil, "t", []string{"PAX"}, []byte("p"))
	f.Add(seed)
	f.Add([]byte{1, 0, 0})
	f.Add([]byte{1, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDataUp(b)
		if err != nil {
			return
		}
		// what parses re-encodes to the same bytes
		again, err := AppendDataUp(nil, d.Topic, d.To, d.Payload)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encoded %v as %v (%v)", b, again, err)
		}
		down := AppendDataDown(nil, "PAFROM", d.Topic, d.Payload)
		if g, err := ParseDataDown(down); err != nil || g.Topic != d.Topic || !bytes.Equal(g.Payload, d.Payload) {
			t.Fatalf("down message %+v, %v", g, err)
		}
	})
}

// A sender gets a second's worth of messages at once, then the rate; the
// byte budget holds too.
func TestDataPeerLimits(t *testing.T) {
	p := newDataPeer("PA", true, DataLimits{MessagesPerSecond: 10, BytesPerSecond: 1000, MaxMessage: 500}, nil, nil)
	t0 := time.Unix(1000, 0)
	n := 0
	for p.admit(t0, 10) {
		n++
	}
	if n != 10 {
		t.Fatalf("admitted %d at once, want a burst of 10", n)
	}
	if p.admit(t0.Add(50*time.Millisecond), 10) {
		t.Fatal("admitted before a message's worth refilled")
	}
	if !p.admit(t0.Add(100*time.Millisecond), 10) {
		t.Fatal("refused after 100 ms at 10 per second")
	}
	// bytes: 1000 per second; 900 used so far plus 10
	q := newDataPeer("PB", true, DataLimits{MessagesPerSecond: 100, BytesPerSecond: 1000, MaxMessage: 500}, nil, nil)
	if !q.admit(t0, 500) || !q.admit(t0, 500) || q.admit(t0, 500) {
		t.Fatal("byte budget of 1000 per second did not hold")
	}
	if !q.admit(t0.Add(500*time.Millisecond), 500) {
		t.Fatal("refused after half a second refilled 500 bytes")
	}
}

// The sender is told each reason at most once a second.
func TestDataRefusalsToldOncePerSecond(t *testing.T) {
	var told []error
	p := newDataPeer("PA", true, DataLimits{}, func(err error) { told = append(told, err) }, nil)
	t0 := time.Unix(1000, 0)
	for i := range 5 {
		p.refused(ErrDataRate, t0.Add(time.Duration(i)*100*time.Millisecond))
	}
	p.refused(ErrDataTooLarge, t0)
	p.refused(ErrDataRate, t0.Add(time.Second))
	if len(told) != 3 || !errors.Is(told[0], ErrDataRate) || !errors.Is(told[1], ErrDataTooLarge) || !errors.Is(told[2], ErrDataRate) {
		t.Fatalf("told %v", told)
	}
	if p.stats().Rejected != 7 {
		t.Fatalf("rejected %d, want 7", p.stats().Rejected)
	}
}

// Routing: a message for chosen recipients is offered to them only; one for
// the room to everyone but the sender; checks come before delivery.
func TestDataRouterChoosesRecipients(t *testing.T) {
	var r dataRouter
	peers := map[string]*dataPeer{}
	for _, id := range []string{"PA", "PB", "PC"} {
		peers[id] = newDataPeer(id, id != "PC", DataLimits{}, nil, nil)
		r.add(peers[id])
	}
	now := time.Unix(1000, 0)
	msg, _ := AppendDataUp(nil, "", []string{"PB"}, []byte("x"))
	if err := r.forward(peers["PA"], true, msg, now); err != nil {
		t.Fatal(err)
	}
	// no channels are open here: an offered message counts as dropped
	if peers["PB"].stats().Dropped != 1 || peers["PC"].stats().Dropped != 0 || peers["PA"].stats().Dropped != 0 {
		t.Fatalf("to PB only: %+v %+v %+v", peers["PA"].stats(), peers["PB"].stats(), peers["PC"].stats())
	}
	all, _ := AppendDataUp(nil, "", nil, []byte("x"))
	if err := r.forward(peers["PA"], false, all, now); err != nil {
		t.Fatal(err)
	}
	if peers["PB"].stats().Dropped != 2 || peers["PC"].stats().Dropped != 1 || peers["PA"].stats().Dropped != 0 {
		t.Fatal("a room message went to the sender or missed someone")
	}
	if err := r.forward(peers["PC"], true, all, now); !errors.Is(err, ErrDataNotPermitted) {
		t.Fatalf("without permission: %v", err)
	}
	big := make([]byte, DefaultDataMaxMessage+1)
	if err := r.forward(peers["PA"], true, big, now); !errors.Is(err, ErrDataTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	twice, _ := AppendDataUp(nil, "", []string{"PB", "PB", "PZ"}, nil)
	if err := r.forward(peers["PA"], true, twice, now); !errors.Is(err, ErrDataUnknownRecipient) {
		t.Fatalf("unknown recipient: %v", err)
	}
	if peers["PB"].stats().Dropped != 3 {
		t.Fatalf("a recipient named twice got %d offers, want one more", peers["PB"].stats().Dropped-2)
	}
	r.remove("PB")
	if err := r.forward(peers["PA"], true, msg, now); !errors.Is(err, ErrDataUnknownRecipient) {
		t.Fatalf("to a participant who left: %v", err)
	}
}

// A receiver takes at most its budget from everyone together: a second's
// worth (or one largest message) at once, then the rate.
func TestDataReceiveBudget(t *testing.T) {
	p := newDataPeer("PA", true, DataLimits{ReceiveBytesPerSecond: 100_000}, nil, nil)
	t0 := time.Unix(1000, 0)
	if !p.admitIn(t0, 60_000) || !p.admitIn(t0, 40_000) {
		t.Fatal("refused within the first second's worth")
	}
	if p.admitIn(t0, 1_000) {
		t.Fatal("admitted past the budget")
	}
	if !p.admitIn(t0.Add(100*time.Millisecond), 10_000) || p.admitIn(t0.Add(100*time.Millisecond), 1_000) {
		t.Fatal("100 ms at 100,000 bytes per second should admit 10,000 bytes, no more")
	}
}
