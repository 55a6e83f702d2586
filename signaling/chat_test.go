package signaling_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chorus-sfu/chorus/signaling"
	"github.com/chorus-sfu/chorus/signaling/client"
)

// chatTexts lists the texts of the chat messages pushed in events.
func chatTexts(events []signaling.Message) []string {
	var out []string
	for _, e := range events {
		if e.Type == signaling.TypeChat {
			for _, c := range e.Messages {
				if c.Kind == "chat" {
					out = append(out, c.Text)
				}
			}
		}
	}
	return out
}

// Chat text reaches the room in order; a late joiner is told how much
// history exists and pulls exactly the last 50 messages; private messages
// reach only their recipient; reactions arrive merged.
func TestChatOverWebSocket(t *testing.T) {
	s := startServer(t, signaling.Config{Chat: signaling.ChatOptions{PerSenderRate: 1000, PerSenderBurst: 1000}})
	a := dial(t, s, "chat", "a")
	b := dial(t, s, "chat", "b")
	for i := 1; i <= 60; i++ {
		r := a.request(signaling.Message{Type: signaling.TypeChat, Text: fmt.Sprint("hello ", i)})
		if r.Type != signaling.TypeChatSent || len(r.Messages) != 1 || r.Messages[0].Seq != uint64(i) {
			t.Fatalf("reply to chat %d: %+v", i, r)
		}
	}
	b.waitUntil("60 chat messages", func(es []signaling.Message) bool { return len(chatTexts(es)) == 60 })
	for i, txt := range chatTexts(b.eventList()) {
		if txt != fmt.Sprint("hello ", i+1) {
			t.Fatalf("message %d is %q: out of order", i, txt)
		}
	}
	late := dial(t, s, "chat", "late")
	n := late.waitFor("chatNotify", func(e signaling.Message) bool { return e.Type == signaling.TypeChatNotify })
	if n.Chat == nil || n.Chat.Latest != 60 || n.Chat.Oldest != 11 {
		t.Fatalf("late joiner told %+v, want oldest 11, latest 60", n.Chat)
	}
	after := uint64(10)
	var got []string
	for {
		h := late.request(signaling.Message{Type: signaling.TypeChatHistory, After: &after, Limit: 20})
		for _, m := range h.Messages {
			got = append(got, m.Text)
			after = m.Seq
		}
		if !h.More {
			break
		}
	}
	if len(got) != 50 || got[0] != "hello 11" || got[49] != "hello 60" {
		t.Fatalf("late joiner pulled %d messages: %v ... ", len(got), got[:min(3, len(got))])
	}
	// private: only b (and the sender) see it
	priv := a.request(signaling.Message{Type: signaling.TypeChat, Text: "psst", To: b.joined.Participant.ID})
	if priv.Type != signaling.TypeChatSent {
		t.Fatalf("private message: %+v", priv)
	}
	b.waitUntil("the private message", func(es []signaling.Message) bool {
		txt := chatTexts(es)
		return len(txt) > 0 && txt[len(txt)-1] == "psst"
	})
	late.sync()
	for _, txt := range chatTexts(late.eventList()) {
		if txt == "psst" {
			t.Fatal("a private message reached a third member")
		}
	}
	// reactions are merged into counts
	for range 3 {
		if err := b.c.Send(signaling.Message{Type: signaling.TypeReaction, Reaction: "+1"}); err != nil {
			t.Fatal(err)
		}
	}
	late.waitUntil("merged reactions", func(es []signaling.Message) bool {
		total := 0
		for _, e := range es {
			for _, m := range e.Messages {
				if m.Kind == "reaction" && m.Reaction == "+1" {
					total += m.Count
				}
			}
		}
		return total == 3
	})
}

// Without the data grant a participant cannot chat; a sender over its rate
// is told.
func TestChatGrantAndRate(t *testing.T) {
	s := startServer(t, signaling.Config{Auth: testVerifier(), Chat: signaling.ChatOptions{PerSenderRate: 1, PerSenderBurst: 2}})
	viewer := dialToken(t, s, "r", token(t, "r", "v", "join,subscribe", time.Hour))
	if r := viewer.request(signaling.Message{Type: signaling.TypeChat, Text: "hi"}); r.Code != signaling.CodeNotPermitted {
		t.Fatalf("chat without the data grant: %+v", r.Code)
	}
	talker := dialToken(t, s, "r", token(t, "r", "t", "join,subscribe,data", time.Hour))
	codes := []string{}
	for range 3 {
		r := talker.request(signaling.Message{Type: signaling.TypeChat, Text: "hi"})
		codes = append(codes, r.Type+"/"+r.Code)
	}
	if codes[0] != "chatSent/" || codes[1] != "chatSent/" || codes[2] != "error/"+signaling.CodeRateLimited {
		t.Fatalf("three messages with a burst of two: %v", codes)
	}
}

// dialToken connects a member with an access token and joins room.
func dialToken(t *testing.T, s *testServer, room, tok string) *member {
	t.Helper()
	m := &member{t: t, name: "token", change: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c, err := client.Dial(ctx, s.url, client.Options{Token: tok, Events: m.record})
	if err != nil {
		t.Fatal(err)
	}
	m.c = c
	t.Cleanup(func() { _ = c.Close() })
	if m.joined, err = c.Join(ctx, room, ""); err != nil {
		t.Fatal(err)
	}
	return m
}

// Under a flood of reactions from one client, the others get merged counts,
// chat text still arrives complete and in order, and only the flooder is
// throttled.
func TestChatReactionFlood(t *testing.T) {
	s := startServer(t, signaling.Config{})
	flooder := dial(t, s, "flood", "flooder")
	talker := dial(t, s, "flood", "talker")
	viewer := dial(t, s, "flood", "viewer")
	for range 300 {
		if err := flooder.c.Send(signaling.Message{Type: signaling.TypeReaction, Reaction: "+1"}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		r := talker.request(signaling.Message{Type: signaling.TypeChat, Text: fmt.Sprint("line ", i)})
		if r.Type != signaling.TypeChatSent {
			t.Fatalf("the talker was refused during the flood: %+v", r.Code)
		}
	}
	viewer.waitUntil("the 10 lines", func(es []signaling.Message) bool { return len(chatTexts(es)) == 10 })
	for i, txt := range chatTexts(viewer.eventList()) {
		if txt != fmt.Sprint("line ", i) {
			t.Fatalf("line %d is %q: out of order", i, txt)
		}
	}
	flooder.waitFor("a throttle error", func(e signaling.Message) bool { return e.Code == signaling.CodeRateLimited })
	total, pushes := 0, 0
	viewer.waitUntil("merged reactions", func(es []signaling.Message) bool {
		total, pushes = 0, 0
		for _, e := range es {
			n := 0
			for _, m := range e.Messages {
				if m.Kind == "reaction" {
					total += m.Count
					n++
				}
			}
			if n > 0 {
				pushes++
			}
		}
		return total > 0
	})
	if total > 300 || pushes > 10 {
		t.Fatalf("the viewer got %d reactions in %d pushes: not merged", total, pushes)
	}
	for _, e := range talker.eventList() {
		if e.Code == signaling.CodeRateLimited {
			t.Fatal("the talker was throttled")
		}
	}
}

// A client that reconnects to a room still open finds the same history
// epoch and pulls exactly what it missed; once the room has closed, a new
// epoch says that sequence numbers started over.
func TestChatReconnectPullsWhatWasMissed(t *testing.T) {
	s := startServer(t, signaling.Config{Chat: signaling.ChatOptions{PerSenderRate: 1000, PerSenderBurst: 1000}})
	a := dial(t, s, "rc", "a")
	b := dial(t, s, "rc", "b")
	first := a.waitFor("chatNotify", func(e signaling.Message) bool { return e.Type == signaling.TypeChatNotify })
	for i := 1; i <= 5; i++ {
		b.request(signaling.Message{Type: signaling.TypeChat, Text: fmt.Sprint("m", i)})
	}
	a.waitUntil("5 messages", func(es []signaling.Message) bool { return len(chatTexts(es)) == 5 })
	_ = a.c.Close()
	for i := 6; i <= 8; i++ {
		b.request(signaling.Message{Type: signaling.TypeChat, Text: fmt.Sprint("m", i)})
	}
	again := dial(t, s, "rc", "a")
	n := again.waitFor("chatNotify", func(e signaling.Message) bool { return e.Type == signaling.TypeChatNotify })
	if n.Chat == nil || first.Chat == nil || n.Chat.Epoch == "" || n.Chat.Epoch != first.Chat.Epoch || n.Chat.Latest != 8 {
		t.Fatalf("rejoin told %+v, first join %+v: want the same epoch and latest 8", n.Chat, first.Chat)
	}
	after := uint64(5)
	h := again.request(signaling.Message{Type: signaling.TypeChatHistory, After: &after})
	var got []string
	for _, m := range h.Messages {
		got = append(got, m.Text)
	}
	if fmt.Sprint(got) != "[m6 m7 m8]" || h.More || h.Chat == nil || h.Chat.Epoch != first.Chat.Epoch {
		t.Fatalf("pulled %v (more %v, %+v), want exactly m6 m7 m8", got, h.More, h.Chat)
	}
	// everyone leaves: the room and its chat close; a new room starts over
	_ = again.c.Close()
	_ = b.c.Close()
	deadline := time.Now().Add(waitLimit)
	for {
		c := dial(t, s, "rc", "c")
		e := c.waitFor("chatNotify", func(e signaling.Message) bool { return e.Type == signaling.TypeChatNotify })
		if e.Chat.Epoch != first.Chat.Epoch {
			if e.Chat.Latest != 0 {
				t.Fatalf("a new room's chat starts with %+v", e.Chat)
			}
			break
		}
		// the server has not seen the others leave yet
		_ = c.c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the room's chat never closed after everyone left")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
