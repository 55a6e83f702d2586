package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock is a manually advanced clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// inbox records what a member receives.
type inbox struct {
	mu      sync.Mutex
	msgs    []Message
	calls   int      // Deliver calls
	notes   []uint64 // Notify arguments
	refuse  bool     // callbacks return false (a slow member)
	onMsg   func(Message)
	joinErr error
}

func (b *inbox) member(id string) Member {
	return Member{
		ID: id, Identity: "user-" + id, Name: strings.ToUpper(id),
		Deliver: func(ms []Message) bool {
			b.mu.Lock()
			b.calls++
			b.msgs = append(b.msgs, ms...)
			refuse, on := b.refuse, b.onMsg
			b.mu.Unlock()
			if on != nil {
				for _, m := range ms {
					on(m)
				}
			}
			return !refuse
		},
		Notify: func(latest uint64) bool {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.notes = append(b.notes, latest)
			return !b.refuse
		},
	}
}

func (b *inbox) messages() []Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Message(nil), b.msgs...)
}

func (b *inbox) notifications() []uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]uint64(nil), b.notes...)
}

func (b *inbox) deliverCalls() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls
}

// ofKind filters messages by kind.
func ofKind(ms []Message, kind string) []Message {
	var out []Message
	for _, m := range ms {
		if m.Kind == kind {
			out = append(out, m)
		}
	}
	return out
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newTestRoom(t *testing.T, opts RoomOptions) *Room {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	r := NewRoom(opts)
	t.Cleanup(r.Close)
	return r
}

func join(t *testing.T, r *Room, id string) (*inbox, JoinInfo) {
	t.Helper()
	b := &inbox{}
	info, err := r.Join(b.member(id))
	if err != nil {
		t.Fatalf("join %s: %v", id, err)
	}
	return b, info
}

// checkSeqs fails unless ms have exactly Seqs from..to in order, with the
// texts "m<seq>".
func checkSeqs(t *testing.T, what string, ms []Message, from, to uint64) {
	t.Helper()
	if want := int(to - from + 1); len(ms) != want {
		t.Fatalf("%s: %d messages, want %d (%d..%d)", what, len(ms), want, from, to)
	}
	for i, m := range ms {
		seq := from + uint64(i)
		if m.Seq != seq || m.Text != fmt.Sprintf("m%d", seq) {
			t.Fatalf("%s: message %d is seq %d %q, want seq %d", what, i, m.Seq, m.Text, seq)
		}
	}
}

func TestHistoryLateJoinerAndReconnect(t *testing.T) {
	clk := newClock()
	// joiners get the last 50; 100 are kept for members that pull (the
	// default budget would keep 1,000)
	r := newTestRoom(t, RoomOptions{Now: clk.Now, Budget: 10})
	early, info := join(t, r, "early")
	if info != (JoinInfo{}) {
		t.Fatalf("join info of an empty room: %+v", info)
	}
	join(t, r, "alice")
	for i := 1; i <= 120; i++ {
		clk.Advance(250 * time.Millisecond) // 4/s: under alice's 5/s
		m, err := r.Send("alice", Message{Text: fmt.Sprintf("m%d", i)})
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if m.Seq != uint64(i) || m.From != "user-alice" || m.FromID != "alice" || m.FromName != "ALICE" || !m.At.Equal(clk.Now()) {
			t.Fatalf("send %d returned %+v", i, m)
		}
	}
	checkSeqs(t, "pushed to the early member", early.messages(), 1, 120)

	late, info := join(t, r, "late")
	if info != (JoinInfo{Oldest: 71, Latest: 120}) {
		t.Fatalf("late join info %+v, want 71..120", info)
	}
	if n := len(late.messages()); n != 0 {
		t.Fatalf("%d messages pushed at join, want none", n)
	}
	got, more := r.History(0, 0)
	if more {
		t.Fatal("more after the whole history")
	}
	checkSeqs(t, "late joiner's pull", got, 71, 120)
	page, more := r.History(0, 20)
	if !more {
		t.Fatal("no more after a first page of 20")
	}
	checkSeqs(t, "first page", page, 71, 90)

	// A member that saw up to 80 reconnects and pages through what it missed.
	var missed []Message
	for after := uint64(80); ; {
		page, more := r.History(after, 15)
		missed = append(missed, page...)
		if !more {
			break
		}
		after = page[len(page)-1].Seq
	}
	checkSeqs(t, "reconnect after 80", missed, 81, 120)

	// One that saw up to 30 (fell behind) still finds 31..120.
	behind, more := r.History(30, 100)
	if more {
		t.Fatal("more after the whole retained history")
	}
	checkSeqs(t, "pull after 30", behind, 31, 120)
	// One that saw only up to 10 can tell that 11..20 are gone.
	oldest, latest := r.Bounds()
	if oldest != 21 || latest != 120 {
		t.Fatalf("bounds %d..%d", oldest, latest)
	}
	page, _ = r.History(10, 0)
	if page[0].Seq != oldest || 10+1 >= oldest {
		t.Fatalf("a gap after 10 is not visible: first %d, oldest %d", page[0].Seq, oldest)
	}
	if page, more := r.History(120, 0); len(page) != 0 || more {
		t.Fatalf("history after the latest: %d messages, more %v", len(page), more)
	}
	if s := r.Stats(); s.Stored != 120 || s.Oldest != 21 || s.Latest != 120 || s.Members != 3 {
		t.Fatalf("stats %+v", s)
	}
}

func TestReactionFloodChatStillArrives(t *testing.T) {
	clk := newClock()
	r := newTestRoom(t, RoomOptions{Now: clk.Now}) // default budgets
	viewer, _ := join(t, r, "viewer")
	const senders, polite = 100, 10
	for i := range senders {
		join(t, r, fmt.Sprintf("s%d", i))
	}
	join(t, r, "c0")
	join(t, r, "c1")
	emojis := []string{"❤️", "👍", "😂"}

	throttled := map[string]int{}
	var sent, dropped, accepted, chats int
	send := func(from, emoji string) {
		sent++
		_, err := r.Send(from, Message{Kind: KindReaction, Reaction: emoji})
		switch {
		case err == nil:
			accepted++
		case errors.Is(err, ErrThrottled):
			throttled[from]++
		case errors.Is(err, ErrOverloaded):
			dropped++
		default:
			t.Fatalf("reaction from %s: %v", from, err)
		}
	}
	// 10 rounds of 20 ms, all within one 250 ms interval: s1..s99 send one
	// reaction each per round (their burst), s0 floods 901 per round, and
	// c0, c1 send chat in the first five rounds.
	for round := range 10 {
		send("s0", emojis[round%len(emojis)])
		for i := 1; i < senders; i++ {
			send(fmt.Sprintf("s%d", i), emojis[(i+round)%len(emojis)])
			if i%10 == 0 {
				for range 100 {
					send("s0", emojis[round%len(emojis)])
				}
			}
		}
		if round < 5 {
			for _, c := range []string{"c0", "c1"} {
				chats++
				if _, err := r.Send(c, Message{Text: fmt.Sprintf("m%d", chats)}); err != nil {
					t.Fatalf("chat %d during the flood: %v", chats, err)
				}
			}
		}
		clk.Advance(20 * time.Millisecond)
	}
	if sent != 10_000 {
		t.Fatalf("sent %d reactions, want 10000", sent)
	}
	if len(throttled) != 1 || throttled["s0"] < 8900 {
		t.Fatalf("throttled per sender %v: want only the flooder s0, nearly all of its 9010", throttled)
	}
	t.Logf("%d reactions: %d accepted, %d dropped by the room budget, %d throttled (all from s0)",
		sent, accepted, dropped, throttled["s0"])
	if dropped == 0 {
		t.Fatal("no reaction dropped: the room budget was not exercised")
	}
	s := r.Stats()
	if s.Throttled != uint64(throttled["s0"]) || s.Dropped != uint64(dropped) || s.Merged != uint64(accepted) ||
		accepted+dropped+throttled["s0"] != sent {
		t.Fatalf("stats %+v; counted accepted %d dropped %d throttled %d", s, accepted, dropped, throttled["s0"])
	}

	// Chat was delivered immediately, in order; no reaction yet.
	checkSeqs(t, "chat during the flood", viewer.messages(), 1, uint64(chats))

	clk.Advance(50 * time.Millisecond)
	r.Tick(clk.Now()) // 250 ms after the room was created: the interval ends
	got := viewer.messages()
	checkSeqs(t, "chat", ofKind(got, KindChat), 1, uint64(chats))
	reactions := ofKind(got, KindReaction)
	if len(reactions) != len(emojis) || viewer.deliverCalls() != chats+1 {
		t.Fatalf("%d merged reactions in %d calls, want %d in one call", len(reactions), viewer.deliverCalls()-chats, len(emojis))
	}
	sum := 0
	for _, m := range reactions {
		if m.Count < 1 || m.From != "" || m.Seq != 0 || !m.At.Equal(clk.Now()) {
			t.Fatalf("merged reaction %+v", m)
		}
		sum += m.Count
	}
	if sum != accepted {
		t.Fatalf("merged counts sum to %d, want the %d accepted (%d sent - %d dropped - %d throttled)",
			sum, accepted, sent, dropped, throttled["s0"])
	}
	if s := r.Stats(); s.Reactions != uint64(len(emojis)) {
		t.Fatalf("stats after tick %+v", s)
	}
	// The next interval starts empty.
	r.Tick(clk.Advance(250 * time.Millisecond))
	if n := len(viewer.messages()); n != len(got) {
		t.Fatalf("%d more messages after an empty interval", n-len(got))
	}
}

func TestPriorityUnderLoad(t *testing.T) {
	clk := newClock()
	r := newTestRoom(t, RoomOptions{Now: clk.Now, Budget: 10, BudgetBurst: 10, PerSenderRate: 1000})
	join(t, r, "a")
	count := func(kind string) (ok int) {
		for {
			msg := Message{Kind: kind, Text: "x", Reaction: "👍"}
			_, err := r.Send("a", msg)
			if errors.Is(err, ErrOverloaded) {
				return ok
			}
			if err != nil {
				t.Fatalf("%s: %v", kind, err)
			}
			ok++
		}
	}
	// Reactions use the budget, events may run it 5 (half a burst) into
	// debt, chat 10 (a burst).
	if n := count(KindReaction); n != 10 {
		t.Fatalf("%d reactions accepted, want 10", n)
	}
	if n := count(KindEvent); n != 5 {
		t.Fatalf("%d events accepted after the reactions, want 5", n)
	}
	if n := count(KindChat); n != 5 {
		t.Fatalf("%d chat accepted after the events, want 5", n)
	}
	// One second refills 10 tokens: back to 0, still no room for reactions.
	clk.Advance(time.Second)
	if _, err := r.Send("a", Message{Kind: KindReaction, Reaction: "👍"}); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("reaction at level 0: %v", err)
	}
	if _, err := r.Send("a", Message{Text: "back"}); err != nil {
		t.Fatalf("chat at level 0: %v", err)
	}
	if s := r.Stats(); s.Dropped != 4 || s.Stored != 11 || s.Merged != 10 {
		t.Fatalf("stats %+v", s)
	}
}

func TestThrottleIsPerSender(t *testing.T) {
	clk := newClock()
	r := newTestRoom(t, RoomOptions{Now: clk.Now})
	join(t, r, "a")
	join(t, r, "b")
	for i := range 10 {
		if _, err := r.Send("a", Message{Text: "hi"}); err != nil {
			t.Fatalf("a's message %d within its burst: %v", i, err)
		}
	}
	if _, err := r.Send("a", Message{Text: "hi"}); !errors.Is(err, ErrThrottled) {
		t.Fatalf("a's 11th message: %v, want ErrThrottled", err)
	}
	if _, err := r.Send("b", Message{Text: "hi"}); err != nil {
		t.Fatalf("b while a is throttled: %v", err)
	}
	clk.Advance(200 * time.Millisecond) // one token at 5/s
	if _, err := r.Send("a", Message{Text: "again"}); err != nil {
		t.Fatalf("a after 200 ms: %v", err)
	}
	if _, err := r.Send("a", Message{Text: "again"}); !errors.Is(err, ErrThrottled) {
		t.Fatalf("a's second message after 200 ms: %v", err)
	}
	if s := r.Stats(); s.Throttled != 2 || s.Stored != 12 {
		t.Fatalf("stats %+v", s)
	}
}

func TestPrivateMessages(t *testing.T) {
	var archived []Message
	r := newTestRoom(t, RoomOptions{Now: newClock().Now, Archive: func(m Message) { archived = append(archived, m) }})
	a, _ := join(t, r, "a")
	b, _ := join(t, r, "b")
	c, _ := join(t, r, "c")
	m, err := r.Send("a", Message{To: "b", Text: "psst"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Seq != 0 || m.To != "b" || m.FromID != "a" {
		t.Fatalf("private message returned %+v", m)
	}
	for name, box := range map[string]*inbox{"a": a, "b": b} {
		got := box.messages()
		if len(got) != 1 || got[0].Text != "psst" || got[0].To != "b" || got[0].From != "user-a" {
			t.Fatalf("%s received %+v", name, got)
		}
	}
	if got := c.messages(); len(got) != 0 {
		t.Fatalf("c received a private message: %+v", got)
	}
	// b replies to the sender's member ID; a message to oneself arrives once.
	if _, err := r.Send("b", Message{To: b.messages()[0].FromID, Text: "hey"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Send("c", Message{To: "c", Text: "note to self"}); err != nil {
		t.Fatal(err)
	}
	if n, n2, n3 := len(a.messages()), len(b.messages()), len(c.messages()); n != 2 || n2 != 2 || n3 != 1 {
		t.Fatalf("a, b, c received %d, %d, %d messages, want 2, 2, 1", n, n2, n3)
	}
	if h, _ := r.History(0, 0); len(h) != 0 || len(archived) != 0 {
		t.Fatalf("private messages stored (%d) or archived (%d)", len(h), len(archived))
	}
	if s := r.Stats(); s.Private != 3 || s.Stored != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestLargeRoomNotifies(t *testing.T) {
	clk := newClock()
	t0 := clk.Now()
	r := newTestRoom(t, RoomOptions{Now: clk.Now, LargeRoom: 3})
	boxes := make([]*inbox, 4)
	for i := range boxes {
		boxes[i], _ = join(t, r, fmt.Sprintf("u%d", i))
	}
	checkNotes := func(when string, want ...uint64) {
		t.Helper()
		for i, b := range boxes {
			if n := b.notifications(); fmt.Sprint(n) != fmt.Sprint(want) {
				t.Fatalf("%s: u%d notified %v, want %v", when, i, n, want)
			}
			if m := ofKind(b.messages(), KindChat); len(m) != 0 {
				t.Fatalf("%s: u%d was pushed %d chat messages", when, i, len(m))
			}
		}
	}
	for i := 1; i <= 3; i++ {
		if _, err := r.Send("u0", Message{Text: fmt.Sprintf("m%d", i)}); err != nil {
			t.Fatal(err)
		}
		clk.Advance(10 * time.Millisecond)
	}
	checkNotes("after three messages", 1) // the first at once, then rate-limited
	r.Tick(t0.Add(100 * time.Millisecond))
	checkNotes("100 ms later", 1)
	r.Tick(t0.Add(250 * time.Millisecond))
	checkNotes("250 ms later", 1, 3)
	r.Tick(t0.Add(600 * time.Millisecond))
	checkNotes("with nothing new", 1, 3)

	h, more := r.History(1, 0)
	checkSeqs(t, "pull after notification", h, 2, 3)
	if more {
		t.Fatal("more")
	}
	// After a quiet interval, the next message is notified at once.
	clk.Advance(time.Second)
	if _, err := r.Send("u1", Message{Text: "m4"}); err != nil {
		t.Fatal(err)
	}
	checkNotes("after a quiet second", 1, 3, 4)

	// Private messages and merged reactions are still pushed.
	if _, err := r.Send("u1", Message{To: "u2", Text: "private"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Send("u3", Message{Kind: KindReaction, Reaction: "🎉"}); err != nil {
		t.Fatal(err)
	}
	r.Tick(clk.Advance(time.Second))
	for i, b := range boxes {
		ms := b.messages()
		wantPrivate := i == 1 || i == 2
		if len(ms) == 0 || ms[len(ms)-1].Reaction != "🎉" || (len(ms) == 2) != wantPrivate {
			t.Fatalf("u%d received %+v", i, ms)
		}
	}
	if s := r.Stats(); s.Notified != 12 {
		t.Fatalf("stats %+v, want 12 notifications", s)
	}

	// Back to LargeRoom members: pushes again.
	r.Leave("u3")
	if _, err := r.Send("u0", Message{Text: "m5"}); err != nil {
		t.Fatal(err)
	}
	if ms := ofKind(boxes[0].messages(), KindChat); len(ms) != 1 || ms[0].Seq != 5 {
		t.Fatalf("small room again: u0 has %+v", ms)
	}
	if n := len(boxes[3].messages()); n != 1 {
		t.Fatalf("u3 received %d messages after leaving", n)
	}
}

func TestValidation(t *testing.T) {
	r := newTestRoom(t, RoomOptions{Now: newClock().Now})
	join(t, r, "a")
	cases := []struct {
		name string
		msg  Message
		want error
	}{
		{"too long", Message{Text: strings.Repeat("x", DefaultMaxText+1)}, ErrTooLarge},
		{"empty", Message{}, ErrEmpty},
		{"blank", Message{Kind: KindEvent, Text: " \n\t"}, ErrEmpty},
		{"unknown recipient", Message{To: "nobody", Text: "hi"}, ErrUnknownRecipient},
		{"unknown kind", Message{Kind: "poll", Text: "hi"}, ErrUnknownKind},
		{"not UTF-8", Message{Text: "\xff\xfe"}, ErrInvalid},
		{"empty reaction", Message{Kind: KindReaction}, ErrEmpty},
		{"long reaction", Message{Kind: KindReaction, Reaction: strings.Repeat("😂", 17)}, ErrTooLarge},
		{"private reaction", Message{Kind: KindReaction, Reaction: "👍", To: "a"}, ErrInvalid},
	}
	for _, c := range cases {
		if _, err := r.Send("a", c.msg); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := r.Send("ghost", Message{Text: "hi"}); !errors.Is(err, ErrNotMember) {
		t.Errorf("send from a non-member: %v", err)
	}
	if _, err := r.Join(Member{ID: "x"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("join without callbacks: %v", err)
	}
	if _, err := r.Join((&inbox{}).member("a")); !errors.Is(err, ErrDuplicateMember) {
		t.Errorf("join twice: %v", err)
	}
	// Refused messages used none of the sender's tokens.
	for i := range 10 {
		if _, err := r.Send("a", Message{Text: strings.Repeat("x", DefaultMaxText)}); err != nil {
			t.Fatalf("valid message %d: %v", i, err)
		}
	}
	if s := r.Stats(); s.Stored != 10 || s.Throttled != 0 || s.Dropped != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestSlowMemberIsDropped(t *testing.T) {
	r := newTestRoom(t, RoomOptions{Now: newClock().Now})
	a, _ := join(t, r, "a")
	slow := &inbox{refuse: true}
	if _, err := r.Join(slow.member("slow")); err != nil {
		t.Fatal(err)
	}
	c, _ := join(t, r, "c")
	for i := 1; i <= 3; i++ {
		if _, err := r.Send("a", Message{Text: fmt.Sprintf("m%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	checkSeqs(t, "a", a.messages(), 1, 3)
	checkSeqs(t, "c", c.messages(), 1, 3)
	if n := slow.deliverCalls(); n != 1 {
		t.Fatalf("the slow member's Deliver was called %d times, want 1", n)
	}
	if s := r.Stats(); s.Members != 2 || s.Evicted != 1 || s.Delivered != 6 {
		t.Fatalf("stats %+v", s)
	}
	if _, err := r.Send("slow", Message{Text: "hello?"}); !errors.Is(err, ErrNotMember) {
		t.Fatalf("send from the dropped member: %v", err)
	}
	// It may join again, e.g. after its client reconnected.
	again, info := join(t, r, "slow")
	if info.Latest != 3 {
		t.Fatalf("rejoin info %+v", info)
	}
	if _, err := r.Send("c", Message{Text: "m4"}); err != nil {
		t.Fatal(err)
	}
	checkSeqs(t, "rejoined", again.messages(), 4, 4)
}

func TestSlowNotifyAndPanickingDeliver(t *testing.T) {
	clk := newClock()
	r := newTestRoom(t, RoomOptions{Now: clk.Now, LargeRoom: 1, PerSenderRate: 100})
	a, _ := join(t, r, "a")
	slow := &inbox{refuse: true}
	if _, err := r.Join(slow.member("slow")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Send("a", Message{Text: "m1"}); err != nil {
		t.Fatal(err)
	}
	if n := a.notifications(); len(n) != 1 || n[0] != 1 {
		t.Fatalf("a notified %v", n)
	}
	if s := r.Stats(); s.Members != 1 || s.Evicted != 1 || s.Notified != 1 {
		t.Fatalf("stats after a refused notification %+v", s)
	}

	// A Deliver that panics must not wedge delivery for later senders.
	boom := Member{ID: "boom", Deliver: func([]Message) bool { panic("boom") }, Notify: func(uint64) bool { return true }}
	if _, err := r.Join(boom); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the panic did not reach the sender")
			}
		}()
		_, _ = r.Send("a", Message{To: "boom", Text: "hi"})
	}()
	r.Leave("boom")
	if _, err := r.Send("a", Message{Text: "m2"}); err != nil {
		t.Fatal(err)
	}
	// a is alone again (a small room): m2 is pushed.
	if ms := ofKind(a.messages(), KindChat); len(ms) != 1 || ms[0].Text != "m2" {
		t.Fatalf("after the panic, a received %+v", ms)
	}

	// At most 32 distinct emojis per interval; more are dropped.
	for i := range 33 {
		_, err := r.Send("a", Message{Kind: KindReaction, Reaction: fmt.Sprintf("e%d", i)})
		if i < 32 && err != nil || i == 32 && !errors.Is(err, ErrOverloaded) {
			t.Fatalf("emoji %d: %v", i, err)
		}
	}
	r.Tick(clk.Advance(time.Second))
	if rs := ofKind(a.messages(), KindReaction); len(rs) != 32 {
		t.Fatalf("%d merged reactions, want 32", len(rs))
	}
}

func TestArchiveAndReactionSenders(t *testing.T) {
	clk := newClock()
	var archived []Message
	r := newTestRoom(t, RoomOptions{Now: clk.Now, Archive: func(m Message) { archived = append(archived, m) }})
	a, _ := join(t, r, "a")
	join(t, r, "b")
	send := func(from string, m Message) {
		t.Helper()
		if _, err := r.Send(from, m); err != nil {
			t.Fatal(err)
		}
	}
	send("a", Message{Text: "hello"})
	send("a", Message{Kind: KindReaction, Reaction: "❤️"})
	send("a", Message{Kind: KindReaction, Reaction: "❤️"})
	send("b", Message{Kind: KindReaction, Reaction: "👍"})
	send("b", Message{Kind: KindReaction, Reaction: "❤️"})
	send("b", Message{To: "a", Text: "private"})
	send("", Message{Kind: KindEvent, Text: "recording started"})
	r.Tick(clk.Advance(100 * time.Millisecond)) // mid-interval: nothing merged yet
	if n := len(ofKind(a.messages(), KindReaction)); n != 0 {
		t.Fatalf("%d reactions before the interval ended", n)
	}
	r.Tick(clk.Advance(150 * time.Millisecond))
	rs := ofKind(a.messages(), KindReaction)
	if len(rs) != 2 || rs[0].Reaction != "❤️" || rs[0].Count != 3 || rs[0].From != "" ||
		rs[1].Reaction != "👍" || rs[1].Count != 1 || rs[1].From != "user-b" || rs[1].FromName != "B" {
		t.Fatalf("merged reactions %+v", rs)
	}
	if len(archived) != 2 || archived[0].Seq != 1 || archived[0].Text != "hello" ||
		archived[1].Seq != 2 || archived[1].Kind != KindEvent || archived[1].From != "" {
		t.Fatalf("archived %+v", archived)
	}
}

func TestMessageJSON(t *testing.T) {
	m := Message{Seq: 7, Kind: KindReaction, From: "alice", FromID: "PA_1", FromName: "Alice", To: "PA_2",
		Text: "t", Reaction: "👍", Count: 3, At: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"seq":7,"kind":"reaction","from":"alice","fromId":"PA_1","fromName":"Alice","to":"PA_2",` +
		`"text":"t","reaction":"👍","count":3,"at":"2026-01-01T00:00:00Z"}`
	if string(data) != want {
		t.Fatalf("JSON\n%s\nwant\n%s", data, want)
	}
	var back Message
	if err := json.Unmarshal(data, &back); err != nil || back != m {
		t.Fatalf("round trip %+v, %v", back, err)
	}
}

// TestConcurrentSendersKeepOrder sends from several goroutines while
// members join and leave: every member sees contiguous Seqs in order, and
// a member that joined mid-stream is pushed exactly what followed its
// JoinInfo.Latest.
func TestConcurrentSendersKeepOrder(t *testing.T) {
	r := newTestRoom(t, RoomOptions{Budget: 1e6, PerSenderRate: 1e6})
	const senders, each, watchers = 6, 50, 10
	boxes := make([]*inbox, watchers)
	for i := range boxes {
		boxes[i], _ = join(t, r, fmt.Sprintf("w%d", i))
	}
	for i := range senders {
		join(t, r, fmt.Sprintf("s%d", i))
	}
	var wg sync.WaitGroup
	for i := range senders {
		wg.Go(func() {
			for j := range each {
				if _, err := r.Send(fmt.Sprintf("s%d", i), Message{Text: "x"}); err != nil {
					t.Errorf("sender %d message %d: %v", i, j, err)
					return
				}
			}
		})
	}
	late := &inbox{}
	var lateInfo JoinInfo
	wg.Go(func() {
		var err error
		if lateInfo, err = r.Join(late.member("late")); err != nil {
			t.Error(err)
		}
		r.Leave("w0")
	})
	wg.Wait()
	const total = senders * each
	check := func(name string, ms []Message, from uint64) {
		t.Helper()
		if len(ms) != int(total-from+1) {
			t.Fatalf("%s: %d messages, want %d..%d", name, len(ms), from, total)
		}
		for i, m := range ms {
			if m.Seq != from+uint64(i) {
				t.Fatalf("%s: message %d has seq %d, want %d", name, i, m.Seq, from+uint64(i))
			}
		}
	}
	for i, b := range boxes[1:] {
		check(fmt.Sprintf("w%d", i+1), b.messages(), 1)
	}
	check("late joiner", late.messages(), lateInfo.Latest+1)
	if s := r.Stats(); s.Stored != total || s.Members != watchers+senders {
		t.Fatalf("stats %+v", s)
	}
}

func TestStartAndClose(t *testing.T) {
	r := NewRoom(RoomOptions{MergeInterval: 5 * time.Millisecond, Logger: quietLogger()})
	got := make(chan Message, 1)
	b := &inbox{onMsg: func(m Message) {
		select {
		case got <- m:
		default:
		}
	}}
	if _, err := r.Join(b.member("a")); err != nil {
		t.Fatal(err)
	}
	r.Start()
	r.Start() // no second goroutine
	if _, err := r.Send("a", Message{Kind: KindReaction, Reaction: "👏"}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m.Reaction != "👏" || m.Count != 1 {
			t.Fatalf("merged reaction %+v", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the Start goroutine never ended the merge interval")
	}
	r.Close()
	r.Close()
	if _, err := r.Send("a", Message{Text: "late"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
	if _, err := r.Join((&inbox{}).member("b")); !errors.Is(err, ErrClosed) {
		t.Fatalf("join after close: %v", err)
	}
	r.Start() // after Close: nothing to leak
	if s := r.Stats(); s.Members != 0 {
		t.Fatalf("stats after close %+v", s)
	}
}
