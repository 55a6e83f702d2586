package signaling_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chorus-sfu/chorus/sfu"
	"github.com/chorus-sfu/chorus/signaling"
	"github.com/chorus-sfu/chorus/signaling/client"
)

// dataMember is a member with the app data channels open.
type dataMember struct {
	*member
	dmu    sync.Mutex
	data   []client.DataMessage
	dataCh chan struct{} // closed and replaced on every data message
}

// dialData connects a member that asks for data channels, joins room (with
// tok, if set) and waits for the channels to open.
func dialData(t *testing.T, s *testServer, room, name, tok string) *dataMember {
	t.Helper()
	d := &dataMember{member: &member{t: t, name: name, change: make(chan struct{})}, dataCh: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c, err := client.Dial(ctx, s.url, client.Options{Token: tok, Events: d.record, Data: true, OnData: d.onData})
	if err != nil {
		t.Fatal(err)
	}
	d.c = c
	t.Cleanup(func() { _ = c.Close() })
	if d.joined, err = c.Join(ctx, room, name); err != nil {
		t.Fatalf("%s: join: %v", name, err)
	}
	if err := c.WaitData(ctx); err != nil {
		t.Fatalf("%s: %v; events: %s", name, err, d.summary())
	}
	return d
}

func (d *dataMember) onData(m client.DataMessage) {
	m.Payload = bytes.Clone(m.Payload)
	d.dmu.Lock()
	d.data = append(d.data, m)
	close(d.dataCh)
	d.dataCh = make(chan struct{})
	d.dmu.Unlock()
}

func (d *dataMember) id() string { return d.joined.Participant.ID }

// waitData waits until n data messages have arrived and returns them all.
func (d *dataMember) waitData(n int) []client.DataMessage {
	d.t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		d.dmu.Lock()
		got, ch := slices.Clone(d.data), d.dataCh
		d.dmu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-ch:
		case <-deadline.C:
			d.t.Fatalf("%s: %d data messages after %v, want %d: %s", d.name, len(got), waitLimit, n, payloads(got))
		}
	}
}

func payloads(ms []client.DataMessage) string {
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%s/%s:%q", m.From, m.Topic, m.Payload))
	}
	return fmt.Sprint(out)
}

func (d *dataMember) send(reliable bool, topic string, to []string, payload string) {
	d.t.Helper()
	if err := d.c.SendData(reliable, topic, to, []byte(payload)); err != nil {
		d.t.Fatalf("%s: send data: %v", d.name, err)
	}
}

// Data messages reach the chosen participants only, on the channel they
// were sent on, with the sender's ID and topic; a recipient not in the room
// is reported to the sender, the others still get the message.
func TestDataChannelsToChosenParticipants(t *testing.T) {
	s := startServer(t, signaling.Config{})
	a := dialData(t, s, "d", "a", "")
	b := dialData(t, s, "d", "b", "")
	c := dialData(t, s, "d", "c", "")
	a.send(true, "cursor", []string{b.id()}, "for b")
	a.send(true, "", nil, "for all")
	got := b.waitData(2)
	if got[0].From != a.id() || got[0].Topic != "cursor" || string(got[0].Payload) != "for b" || !got[0].Reliable ||
		string(got[1].Payload) != "for all" {
		t.Fatalf("b received %s", payloads(got))
	}
	// the reliable channel is ordered: c's first message is the broadcast
	if got := c.waitData(1); string(got[0].Payload) != "for all" {
		t.Fatalf("c received %s: a message for b only reached c", payloads(got))
	}
	b.send(false, "lossy", []string{a.id()}, "unreliable")
	if got := a.waitData(1); got[0].Reliable || string(got[0].Payload) != "unreliable" || got[0].From != b.id() {
		t.Fatalf("a received %s on the lossy channel", payloads(got))
	}
	c.send(true, "", []string{a.id(), "PANOBODY"}, "partly addressed")
	if got := a.waitData(2); string(got[1].Payload) != "partly addressed" {
		t.Fatalf("a received %s", payloads(got))
	}
	c.waitFor("the unknown recipient's error", func(e signaling.Message) bool {
		return e.Type == signaling.TypeError && e.Code == signaling.CodeNotFound
	})
	// nobody received their own message, and b nothing more
	a.send(true, "end", []string{b.id()}, "end")
	if got := b.waitData(3); len(got) != 3 || string(got[2].Payload) != "end" {
		t.Fatalf("b received %s", payloads(got))
	}
}

// Oversized, malformed and too frequent messages are refused and their
// sender is told (with target "data"); another sender's messages still flow.
func TestDataBounds(t *testing.T) {
	s := startServerSFU(t, sfu.Config{Data: sfu.DataLimits{MaxMessage: 1000, MessagesPerSecond: 5, BytesPerSecond: 1 << 20}}, signaling.Config{})
	flood := dialData(t, s, "b", "flood", "")
	calm := dialData(t, s, "b", "calm", "")
	rx := dialData(t, s, "b", "rx", "")
	// the server's SDP advertises the limit: the client refuses larger
	// messages itself (the server's own check is in package sfu's tests)
	if err := flood.c.SendData(true, "", []string{rx.id()}, make([]byte, 1200)); err == nil {
		t.Fatal("a 1,200-byte message left a client told that 1,000 bytes is the most")
	}
	if err := flood.c.SendDataRaw(true, []byte{9, 0, 0}); err != nil {
		t.Fatal(err)
	}
	flood.waitFor("bad_request", func(e signaling.Message) bool {
		return e.Type == signaling.TypeError && e.Code == signaling.CodeBadRequest && e.Target == signaling.TargetData
	})
	for i := range 40 {
		flood.send(true, "", []string{rx.id()}, fmt.Sprint("flood ", i))
	}
	flood.waitFor("rate_limited", func(e signaling.Message) bool {
		return e.Type == signaling.TypeError && e.Code == signaling.CodeRateLimited
	})
	calm.send(true, "", []string{rx.id()}, "calm")
	deadline := time.Now().Add(waitLimit)
	for {
		got := rx.waitData(1)
		var floods, calms int
		for _, m := range got {
			switch {
			case m.From == calm.id():
				calms++
			case m.From == flood.id():
				floods++
			}
		}
		if calms == 1 {
			// 5 per second with a burst of 5: the 40 sent at once are cut to
			// about the burst (a little refills while they arrive)
			if floods < 5 || floods > 10 {
				t.Fatalf("rx received %d of 40 flooded messages, want about 5", floods)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the calm sender's message never arrived: %s", payloads(got))
		}
		rx.waitData(len(got) + 1)
	}
}

// Without the data grant a participant still receives data but cannot send.
func TestDataNeedsGrant(t *testing.T) {
	s := startServer(t, signaling.Config{Auth: testVerifier()})
	viewer := dialData(t, s, "g", "viewer", token(t, "g", "v", "join,subscribe", time.Hour))
	talker := dialData(t, s, "g", "talker", token(t, "g", "t", "join,subscribe,data", time.Hour))
	if viewer.joined.CanData == nil || *viewer.joined.CanData || talker.joined.CanData == nil || !*talker.joined.CanData {
		t.Fatalf("canData: viewer %v, talker %v", viewer.joined.CanData, talker.joined.CanData)
	}
	viewer.send(true, "", nil, "not allowed")
	viewer.waitFor("not_permitted", func(e signaling.Message) bool {
		return e.Type == signaling.TypeError && e.Code == signaling.CodeNotPermitted
	})
	talker.send(true, "", nil, "allowed")
	if got := viewer.waitData(1); string(got[0].Payload) != "allowed" {
		t.Fatalf("viewer received %s", payloads(got))
	}
	talker.sync()
	talker.dmu.Lock()
	n := len(talker.data)
	talker.dmu.Unlock()
	if n != 0 {
		t.Fatalf("the viewer's refused message reached the talker")
	}
}
