// Package chat is the core of room text chat: an ordered, bounded chat log
// per room, private messages, merged reactions, and delivery to members
// under load. It knows nothing of WebSockets: the signaling layer turns
// client messages into calls of this package and hands what it delivers to
// clients.
//
// # Rooms and members
//
// A [Room] is created with [NewRoom] and released with [Room.Close]. A
// [Member] joins with [Room.Join] and leaves with [Room.Leave]. A member is
// an ID plus two callbacks: Deliver, which receives messages pushed to the
// member, and Notify, which tells the member of a large room that new
// messages exist up to a sequence number. Both callbacks must not block
// (typically a non-blocking send on a bounded per-client queue); returning
// false means the member cannot keep up, and the room removes it.
//
// # Messages
//
// Every [Message] has a Kind:
//
//   - "chat": text. Sent to the room (To empty), it gets the next sequence
//     number Seq, is stored in the history ring (the last
//     RoomOptions.HistorySize messages) and passed to RoomOptions.Archive.
//     Sent to a member (To set), it is private: it goes to the recipient and
//     the sender only, has Seq 0 and is neither stored nor archived.
//   - "event": like chat (stored, or private when To is set); for things
//     that belong in the timeline, such as "recording started" or a raised
//     hand. Signaling decides which events clients may send.
//   - "reaction": an emoji (Reaction). Reactions are never stored: within
//     each RoomOptions.MergeInterval, all reactions with the same emoji
//     become one message whose Count is their number, delivered to every
//     member when the interval ends.
//
// Seq starts at 1 and is contiguous over stored messages, so a client that
// last saw Seq n asks [Room.History] for what came after n and gets exactly
// what it missed, as long as it is still in the ring; when n+1 is below
// Oldest (from [JoinInfo] or [Room.Bounds]) messages were lost and the
// client should say so.
//
// # Delivery
//
// Rooms with at most RoomOptions.LargeRoom members push: every stored
// message is delivered to every member as soon as it is sent. Larger rooms
// notify instead: each member's Notify is called with the latest Seq at
// most once per MergeInterval, and the member pulls with History. Private
// messages and merged reactions are pushed in both modes (they are not in
// the history, and merged reactions are a handful of messages per
// interval). Nothing is pushed at join: [JoinInfo] tells the new member
// which history exists, and it pulls what it wants.
//
// Callbacks are never called with the room's lock held. Deliveries are
// queued under the lock and run in order by one goroutine at a time: the
// goroutine whose [Room.Send] or [Room.Tick] found no delivery in progress
// runs every queued delivery, including those queued meanwhile by other
// goroutines, before it returns. Hence each member sees messages in Seq
// order, callbacks for one room never run concurrently, and when every Send
// and Tick call has returned, everything they queued has been delivered.
// The messages slice passed to Deliver is shared between members: it must
// not be modified, but may be kept.
//
// # Load
//
// Each sender has its own token bucket (RoomOptions.PerSenderRate): a sender
// over its rate gets [ErrThrottled] and nobody else is affected. The room
// has a budget (RoomOptions.Budget) shared by everyone, with priorities:
// reactions are accepted only while the budget has tokens, events may run
// it into a debt of half a burst, and chat may run it into a debt of a
// whole burst, so under load reactions are dropped first, then events, and
// chat only when the budget is far exceeded. Refused messages get
// [ErrOverloaded]. Everything is counted in [RoomStats].
//
// # Time
//
// The room reads the time from RoomOptions.Now. Merge intervals and
// rate-limited notifications advance when [Room.Tick] is called; call it
// at least every MergeInterval, or let [Room.Start] run a goroutine that
// does so until [Room.Close]. Tests drive Tick with a fake clock.
package chat
