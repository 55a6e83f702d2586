package chat

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults applied by NewRoom to zero (or negative) RoomOptions fields.
const (
	// DefaultHistorySize is the number of stored messages kept.
	DefaultHistorySize = 50
	// DefaultLargeRoom is the member count above which members are
	// notified instead of pushed.
	DefaultLargeRoom = 200
	// DefaultBudget is the room's rate in messages per second (burst:
	// twice as many).
	DefaultBudget = 100
	// RetainTime: by default a room keeps this long of its budget's worth
	// of messages for members that pull.
	RetainTime = 10 * time.Second
	// DefaultPerSenderRate is each sender's rate in messages per second
	// (burst: twice as many).
	DefaultPerSenderRate = 5
	// DefaultMaxText is the largest Text, in bytes.
	DefaultMaxText = 2000
	// DefaultMergeInterval is the reaction merge and notification period.
	DefaultMergeInterval = 250 * time.Millisecond
)

const (
	// defaultBurstPerRate makes default bursts two seconds' worth.
	defaultBurstPerRate = 2
	// dropWarnInterval rate-limits the overload warning.
	dropWarnInterval = 10 * time.Second
	// maxReactionsPerWindow bounds the distinct emojis merged per
	// interval, and so the merged messages per interval.
	maxReactionsPerWindow = 32
)

// MaxHistoryPage is the most messages one History call returns.
const MaxHistoryPage = 100

// RoomOptions configures a Room. The zero value is usable.
type RoomOptions struct {
	// Name names the room in log records.
	Name string
	// HistorySize is how many of the latest stored messages a member that
	// joins is offered (JoinInfo, History from 0). Default
	// DefaultHistorySize.
	HistorySize int
	// Retain is how many stored messages the room keeps for members that
	// pull what they have not seen yet (History after a Seq they hold): in
	// a large room, where members pull after each notification, a member
	// that falls behind by a moment must still find what it missed. Default
	// and minimum: HistorySize, or RetainTime of the room's Budget if more.
	Retain int
	// LargeRoom is the member count above which members are notified of
	// new stored messages (and pull them) instead of receiving them.
	// Default DefaultLargeRoom.
	LargeRoom int
	// Budget is the rate, in messages per second, the room accepts from
	// all senders together; see the package documentation for how kinds
	// share it. Default DefaultBudget.
	Budget float64
	// BudgetBurst is the budget's bucket size. Default 2*Budget.
	BudgetBurst float64
	// PerSenderRate is the rate, in messages per second, each member may
	// send. Default DefaultPerSenderRate.
	PerSenderRate float64
	// PerSenderBurst is each sender's bucket size. Default 2*PerSenderRate.
	PerSenderBurst float64
	// MaxText bounds a message's Text in bytes. Default DefaultMaxText.
	MaxText int
	// MergeInterval is the period over which reactions are merged, and the
	// least time between two notifications in a large room. Default
	// DefaultMergeInterval.
	MergeInterval time.Duration
	// Archive, when set, is called with every stored message (room chat and
	// room events), in Seq order, from the goroutine that delivers them
	// and without the room's lock held. It should return quickly.
	Archive func(Message)
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives evictions and overload warnings. Default
	// slog.Default().
	Logger *slog.Logger
}

// Member is a participant of a room's chat.
type Member struct {
	// ID identifies the member in the room (Send's from, Message.To).
	ID string
	// Identity is the authenticated identity, stamped as Message.From.
	Identity string
	// Name is the display name, stamped as Message.FromName.
	Name string
	// Deliver receives pushed messages, in order. It must not block; it
	// returns false when the member cannot keep up, and the member is then
	// removed from the room. The slice is shared: do not modify it.
	Deliver func([]Message) bool
	// Notify tells a member of a large room that stored messages up to
	// Seq latest exist, to be pulled with History. Same rules as Deliver.
	Notify func(latest uint64) bool
}

// JoinInfo describes the stored history when a member joins: messages
// Oldest..Latest can be pulled with History; later ones will be pushed
// (or notified). Both are 0 while nothing is stored.
type JoinInfo struct {
	Oldest uint64 `json:"oldest"`
	Latest uint64 `json:"latest"`
}

// RoomStats are a room's counters, cumulative except Members, Oldest and
// Latest.
type RoomStats struct {
	// Members is the current member count.
	Members uint64
	// Stored counts messages stored in the history (room chat and events).
	Stored uint64
	// Private counts private messages accepted.
	Private uint64
	// Delivered counts messages handed to Deliver callbacks that returned
	// true (one per message per member).
	Delivered uint64
	// Notified counts Notify calls that returned true.
	Notified uint64
	// Merged counts reactions accepted; it equals the sum of the Counts of
	// the merged reactions emitted (plus those pending or discarded by
	// Close).
	Merged uint64
	// Reactions counts merged reaction messages emitted.
	Reactions uint64
	// Dropped counts messages refused because the room was over budget.
	Dropped uint64
	// Throttled counts messages refused because their sender was over its
	// own rate.
	Throttled uint64
	// Evicted counts members removed because a callback returned false.
	Evicted uint64
	// Oldest and Latest are the Seqs of the oldest and newest stored
	// messages still in the history (0 when none).
	Oldest, Latest uint64
}

// member is a joined Member with its room-side state.
type member struct {
	Member
	idx  int         // position in Room.list; guarded by Room.mu
	rate bucket      // the sender's own rate; guarded by Room.mu
	gone atomic.Bool // left or evicted: callbacks are no longer called
}

// pendingReaction accumulates one emoji's reactions in a merge window.
type pendingReaction struct {
	msg   Message // Count so far; From* of the first sender
	mixed bool    // reactions from more than one sender: From* cleared
}

// counters are updated with atomics so that delivery can count without
// the lock.
type counters struct {
	stored, private, delivered, notified, merged, reactions atomic.Uint64
	dropped, throttled, evicted                             atomic.Uint64
}

// Room is one room's chat. Create it with NewRoom. Its methods are safe for
// concurrent use.
type Room struct {
	name        string
	epoch       string
	largeRoom   int
	maxText     int
	interval    time.Duration
	senderRate  float64
	senderBurst float64
	budgetBurst float64
	archive     func(Message)
	now         func() time.Time
	log         *slog.Logger
	st          counters

	mu      sync.RWMutex
	closed  bool
	members map[string]*member
	list    []*member // members in no particular order
	snap    []*member // immutable copy of list for deliveries; nil when stale
	seq     uint64    // Seq of the latest stored message
	hist    ring
	joinN   uint64 // HistorySize
	budget  bucket
	dropLog time.Time // last overload warning

	window    time.Time // start of the current merge window
	reactions []pendingReaction
	reactIx   map[string]int // emoji -> index in reactions

	lastNotify    time.Time // last notification of a large room
	notifyPending bool      // stored messages since lastNotify

	outbox   []job // deliveries queued in order
	spare    []job // a drained outbox, reused
	draining bool  // a goroutine is running the outbox

	stop, done chan struct{} // the Start goroutine
}

// NewRoom returns an empty room. Call Close when it is no longer needed.
func NewRoom(opts RoomOptions) *Room {
	if opts.HistorySize <= 0 {
		opts.HistorySize = DefaultHistorySize
	}
	if opts.LargeRoom <= 0 {
		opts.LargeRoom = DefaultLargeRoom
	}
	if opts.Budget <= 0 {
		opts.Budget = DefaultBudget
	}
	if opts.BudgetBurst <= 0 {
		opts.BudgetBurst = defaultBurstPerRate * opts.Budget
	}
	if opts.PerSenderRate <= 0 {
		opts.PerSenderRate = DefaultPerSenderRate
	}
	if opts.PerSenderBurst <= 0 {
		opts.PerSenderBurst = defaultBurstPerRate * opts.PerSenderRate
	}
	opts.Retain = max(opts.Retain, opts.HistorySize, int(opts.Budget*RetainTime.Seconds()))
	if opts.MaxText <= 0 {
		opts.MaxText = DefaultMaxText
	}
	if opts.MergeInterval <= 0 {
		opts.MergeInterval = DefaultMergeInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	now := opts.Now()
	var e [8]byte
	_, _ = rand.Read(e[:])
	return &Room{
		name:        opts.Name,
		epoch:       base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(e[:]),
		largeRoom:   opts.LargeRoom,
		maxText:     opts.MaxText,
		interval:    opts.MergeInterval,
		senderRate:  opts.PerSenderRate,
		senderBurst: opts.PerSenderBurst,
		budgetBurst: opts.BudgetBurst,
		archive:     opts.Archive,
		now:         opts.Now,
		log:         opts.Logger.With("component", "chat", "room", opts.Name),
		members:     make(map[string]*member),
		hist:        ring{size: opts.Retain},
		joinN:       uint64(opts.HistorySize),
		budget:      newBucket(opts.Budget, opts.BudgetBurst, now),
		window:      now,
		reactIx:     make(map[string]int),
	}
}

// Epoch identifies this room's history: a room that closes and is created
// again under the same name starts its sequence numbers again, with a new
// epoch. A reconnecting client that held messages of another epoch must
// drop them and pull the history from the start.
func (r *Room) Epoch() string { return r.epoch }

// Join adds m to the room and returns the history available to pull.
// Nothing is pushed at join: stored messages after JoinInfo.Latest are
// pushed (or notified), earlier ones are pulled with History. m's callbacks
// may be called before Join returns. m needs an ID, Deliver and Notify.
func (r *Room) Join(m Member) (JoinInfo, error) {
	if m.ID == "" || m.Deliver == nil || m.Notify == nil {
		return JoinInfo{}, fmt.Errorf("join %q: a member needs an ID, Deliver and Notify: %w", m.ID, ErrInvalid)
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return JoinInfo{}, fmt.Errorf("join %q: %w", m.ID, ErrClosed)
	}
	if _, ok := r.members[m.ID]; ok {
		return JoinInfo{}, fmt.Errorf("join %q: %w", m.ID, ErrDuplicateMember)
	}
	mm := &member{Member: m, idx: len(r.list), rate: newBucket(r.senderRate, r.senderBurst, now)}
	r.members[m.ID] = mm
	r.list = append(r.list, mm)
	r.snap = nil
	return r.joinBounds(), nil
}

// Leave removes member id from the room; unknown IDs are ignored. A
// delivery already running may still call the member's callbacks once.
func (r *Room) Leave(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m := r.members[id]; m != nil {
		r.remove(m)
	}
}

// remove takes m out of the member list. r.mu must be held.
func (r *Room) remove(m *member) {
	m.gone.Store(true)
	delete(r.members, m.ID)
	last := len(r.list) - 1
	r.list[m.idx] = r.list[last]
	r.list[m.idx].idx = m.idx
	r.list[last] = nil
	r.list = r.list[:last]
	r.snap = nil
}

// snapshot returns an immutable copy of the member list. r.mu must be
// held for writing.
func (r *Room) snapshot() []*member {
	if r.snap == nil && len(r.list) > 0 {
		r.snap = slices.Clone(r.list)
	}
	return r.snap
}

// bounds returns the stored history's range. r.mu must be held.
func (r *Room) bounds() JoinInfo {
	n := uint64(r.hist.len())
	if n == 0 {
		return JoinInfo{}
	}
	return JoinInfo{Oldest: r.seq - n + 1, Latest: r.seq}
}

// joinBounds is the range offered to members that join: the latest
// HistorySize messages. r.mu must be held.
func (r *Room) joinBounds() JoinInfo {
	b := r.bounds()
	if b.Latest >= r.joinN && b.Oldest < b.Latest-r.joinN+1 {
		b.Oldest = b.Latest - r.joinN + 1
	}
	return b
}

// Bounds returns the Seqs of the oldest and newest messages History can
// return (0, 0 while nothing is stored). A client that last saw Seq n has
// missed messages for good when n+1 < oldest.
func (r *Room) Bounds() (oldest, latest uint64) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	b := r.bounds()
	return b.Oldest, b.Latest
}

// History returns the stored messages with Seq > after, oldest first, at
// most limit of them (MaxHistoryPage when limit is out of 1..MaxHistoryPage),
// and whether more follow. Messages that have left the ring are skipped:
// compare after+1 with Bounds' oldest to detect a gap. After 0 (a member
// that holds nothing yet) the history starts at the latest HistorySize
// messages, the range Join offers.
func (r *Room) History(after uint64, limit int) ([]Message, bool) {
	if limit <= 0 || limit > MaxHistoryPage {
		limit = MaxHistoryPage
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	b := r.bounds()
	if b.Latest == 0 || after >= b.Latest {
		return nil, false
	}
	first := max(after+1, b.Oldest)
	if after == 0 {
		first = r.joinBounds().Oldest
	}
	n := min(uint64(limit), b.Latest-first+1)
	out := make([]Message, n)
	for i := range out {
		out[i] = r.hist.at(int(first - b.Oldest + uint64(i)))
	}
	return out, first+n <= b.Latest
}

// floor returns how far into debt a kind may run the room budget.
func (r *Room) floor(kind string) float64 {
	switch kind {
	case KindReaction:
		return 0
	case KindEvent:
		return -r.budgetBurst / 2
	default:
		return -r.budgetBurst
	}
}

// Send accepts msg from member from (empty from: the server itself, which
// is neither a member nor rate limited by sender) and returns it as
// stamped: Seq for stored messages, From, FromID, FromName, At, and Count 1
// for a reaction. Errors: validation (ErrTooLarge, ErrEmpty, ErrInvalid,
// ErrUnknownKind, ErrUnknownRecipient, ErrNotMember), load (ErrThrottled,
// ErrOverloaded) and ErrClosed, all wrapped. Send runs queued deliveries
// (see the package documentation) but never waits for a slow member.
func (r *Room) Send(from string, msg Message) (Message, error) {
	msg, err := normalise(msg, r.maxText)
	if err != nil {
		return Message{}, err
	}
	now := r.now()
	r.mu.Lock()
	msg, drain, err := r.accept(from, msg, now)
	r.mu.Unlock()
	if drain {
		r.drain()
	}
	return msg, err
}

// accept admits, stamps and queues msg. r.mu must be held. drain reports
// that the caller must run the outbox.
func (r *Room) accept(from string, msg Message, now time.Time) (_ Message, drain bool, _ error) {
	if r.closed {
		return Message{}, false, fmt.Errorf("send: %w", ErrClosed)
	}
	var sender *member
	if from != "" {
		if sender = r.members[from]; sender == nil {
			return Message{}, false, fmt.Errorf("send from %q: %w", from, ErrNotMember)
		}
		msg.From, msg.FromID, msg.FromName = sender.Identity, sender.ID, sender.Name
	}
	var rcpt *member
	if msg.To != "" {
		if rcpt = r.members[msg.To]; rcpt == nil {
			return Message{}, false, fmt.Errorf("send to %q: %w", msg.To, ErrUnknownRecipient)
		}
	}
	if sender != nil && !sender.rate.take(now, 0) {
		r.st.throttled.Add(1)
		r.log.Debug("chat sender throttled", "member", from, "kind", msg.Kind)
		return Message{}, false, fmt.Errorf("send from %q: over %g messages/s: %w", from, r.senderRate, ErrThrottled)
	}
	if msg.Kind == KindReaction {
		if _, ok := r.reactIx[msg.Reaction]; !ok && len(r.reactions) >= maxReactionsPerWindow {
			return Message{}, false, r.drop(now, msg, "too many distinct reactions")
		}
	}
	if !r.budget.take(now, r.floor(msg.Kind)) {
		return Message{}, false, r.drop(now, msg, "budget exceeded")
	}
	msg.At = now
	switch {
	case msg.Kind == KindReaction:
		msg.Count = 1
		r.addReaction(msg)
		r.st.merged.Add(1)
		return msg, false, nil
	case rcpt != nil:
		r.st.private.Add(1)
		to := []*member{rcpt}
		if sender != nil && sender != rcpt {
			to = append(to, sender)
		}
		return msg, r.enqueue(job{msgs: []Message{msg}, to: to}), nil
	}
	r.seq++
	msg.Seq = r.seq
	r.hist.push(msg)
	r.st.stored.Add(1)
	if len(r.list) <= r.largeRoom {
		return msg, r.enqueue(job{msgs: []Message{msg}, to: r.snapshot(), archive: true}), nil
	}
	if r.archive != nil { // nothing is pushed, but the archive is kept in order
		drain = r.enqueue(job{msgs: []Message{msg}, archive: true})
	}
	if now.Sub(r.lastNotify) >= r.interval {
		if r.notify(now) {
			drain = true
		}
	} else {
		r.notifyPending = true
	}
	return msg, drain, nil
}

// drop counts a message refused for lack of budget and returns its error.
// r.mu must be held.
func (r *Room) drop(now time.Time, msg Message, why string) error {
	r.st.dropped.Add(1)
	if now.Sub(r.dropLog) >= dropWarnInterval {
		r.dropLog = now
		r.log.Warn("chat room overloaded, dropping messages", "reason", why, "kind", msg.Kind,
			"dropped", r.st.dropped.Load())
	}
	return fmt.Errorf("%s dropped: %s: %w", msg.Kind, why, ErrOverloaded)
}

// addReaction merges msg into the current window. r.mu must be held.
func (r *Room) addReaction(msg Message) {
	if i, ok := r.reactIx[msg.Reaction]; ok {
		p := &r.reactions[i]
		p.msg.Count++
		if p.msg.FromID != msg.FromID {
			p.mixed = true
		}
		return
	}
	r.reactIx[msg.Reaction] = len(r.reactions)
	r.reactions = append(r.reactions, pendingReaction{msg: msg})
}

// notify queues a notification of the latest Seq to every member. r.mu
// must be held.
func (r *Room) notify(now time.Time) (drain bool) {
	r.lastNotify = now
	r.notifyPending = false
	return r.enqueue(job{notify: r.seq, to: r.snapshot()})
}

// Tick ends the merge interval if MergeInterval has passed since the last
// one ended, delivering the merged reactions to every member, and sends a
// large room's pending notification once MergeInterval has passed since
// the previous one. Call it at least every MergeInterval (Start does);
// extra calls are harmless. It runs queued deliveries before returning.
func (r *Room) Tick(now time.Time) {
	drain := false
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	if now.Sub(r.window) >= r.interval {
		r.window = now
		if len(r.reactions) > 0 {
			msgs := make([]Message, len(r.reactions))
			for i, p := range r.reactions {
				msgs[i] = p.msg
				msgs[i].At = now
				if p.mixed {
					msgs[i].From, msgs[i].FromID, msgs[i].FromName = "", "", ""
				}
			}
			clear(r.reactions)
			r.reactions = r.reactions[:0]
			clear(r.reactIx)
			r.st.reactions.Add(uint64(len(msgs)))
			drain = r.enqueue(job{msgs: msgs, to: r.snapshot()})
		}
	}
	if r.notifyPending && now.Sub(r.lastNotify) >= r.interval {
		if r.notify(now) {
			drain = true
		}
	}
	r.mu.Unlock()
	if drain {
		r.drain()
	}
}

// Start runs a goroutine that calls Tick every MergeInterval with the
// time from RoomOptions.Now, until Close. Calling it again, or after
// Close, does nothing. Rooms driven by explicit Tick calls do not need it.
func (r *Room) Start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.stop != nil {
		return
	}
	r.stop, r.done = make(chan struct{}), make(chan struct{})
	go r.loop(r.stop, r.done)
}

func (r *Room) loop(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			r.Tick(r.now())
		}
	}
}

// Close stops the Start goroutine (waiting for it), removes every member
// and discards pending reactions. Later Join and Send calls fail with
// ErrClosed; History still answers. Close is idempotent.
func (r *Room) Close() {
	r.mu.Lock()
	first := !r.closed
	r.closed = true
	stop, done := r.stop, r.done
	if first {
		for _, m := range r.list {
			m.gone.Store(true)
		}
		r.list, r.snap = nil, nil
		clear(r.members)
		clear(r.reactions)
		r.reactions = nil
		clear(r.reactIx)
		r.notifyPending = false
	}
	r.mu.Unlock()
	if stop == nil {
		return
	}
	if first {
		close(stop)
	}
	<-done
}

// Stats returns the room's counters.
func (r *Room) Stats() RoomStats {
	r.mu.RLock()
	members := uint64(len(r.list))
	b := r.bounds()
	r.mu.RUnlock()
	return RoomStats{
		Members:   members,
		Stored:    r.st.stored.Load(),
		Private:   r.st.private.Load(),
		Delivered: r.st.delivered.Load(),
		Notified:  r.st.notified.Load(),
		Merged:    r.st.merged.Load(),
		Reactions: r.st.reactions.Load(),
		Dropped:   r.st.dropped.Load(),
		Throttled: r.st.throttled.Load(),
		Evicted:   r.st.evicted.Load(),
		Oldest:    b.Oldest,
		Latest:    b.Latest,
	}
}
