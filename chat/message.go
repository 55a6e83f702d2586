package chat

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Message kinds.
const (
	// KindChat is a text message, to the room or to one member.
	KindChat = "chat"
	// KindEvent is a timeline event (a raised hand, a recording started),
	// to the room or to one member. It has lower priority than chat.
	KindEvent = "event"
	// KindReaction is an emoji reaction to the room. Reactions are merged
	// per MergeInterval and have the lowest priority.
	KindReaction = "reaction"
)

// MaxReaction is the largest Reaction accepted, in bytes (room for emoji
// sequences with modifiers and joiners).
const MaxReaction = 64

// Errors returned by Room methods, wrapped with details; test with
// errors.Is.
var (
	// ErrEmpty: a chat or event message without text, or a reaction
	// without an emoji (whitespace counts as nothing).
	ErrEmpty = errors.New("chat: empty message")
	// ErrTooLarge: text longer than RoomOptions.MaxText, or a reaction
	// longer than MaxReaction.
	ErrTooLarge = errors.New("chat: message too large")
	// ErrInvalid: malformed input, such as text that is not UTF-8, a
	// reaction addressed to a member, or a member without an ID or
	// callbacks.
	ErrInvalid = errors.New("chat: invalid message")
	// ErrUnknownKind: a Kind other than chat, event and reaction.
	ErrUnknownKind = errors.New("chat: unknown message kind")
	// ErrUnknownRecipient: To names no member of the room.
	ErrUnknownRecipient = errors.New("chat: unknown recipient")
	// ErrNotMember: the sender is not a member of the room.
	ErrNotMember = errors.New("chat: sender is not a member")
	// ErrDuplicateMember: Join with the ID of a current member.
	ErrDuplicateMember = errors.New("chat: member already joined")
	// ErrThrottled: the sender is over its own rate; others are unaffected.
	ErrThrottled = errors.New("chat: sender throttled")
	// ErrOverloaded: the room is over its budget and dropped the message
	// (reactions first, then events, chat last).
	ErrOverloaded = errors.New("chat: room overloaded")
	// ErrClosed: the room is closed.
	ErrClosed = errors.New("chat: room closed")
)

// Message is one chat message, event or (merged) reaction. The server
// assigns Seq, From, FromID, FromName, Count and At; values sent by a
// client in these fields are ignored.
type Message struct {
	// Seq numbers stored messages (room chat and room events) per room,
	// from 1 without gaps. It is 0 for messages that are not stored:
	// private messages and reactions.
	Seq uint64 `json:"seq,omitempty"`
	// Kind is KindChat, KindEvent or KindReaction; empty means KindChat.
	Kind string `json:"kind"`
	// From is the sender's identity; empty for messages from the server
	// and for merged reactions from several senders.
	From string `json:"from,omitempty"`
	// FromID is the sender's member ID, to reply privately (To = FromID).
	FromID string `json:"fromId,omitempty"`
	// FromName is the sender's display name.
	FromName string `json:"fromName,omitempty"`
	// To is empty for the room, else the member ID of the recipient of a
	// private message.
	To string `json:"to,omitempty"`
	// Text is the text of chat and event messages.
	Text string `json:"text,omitempty"`
	// Reaction is the emoji of a reaction.
	Reaction string `json:"reaction,omitempty"`
	// Count is, on a merged reaction, how many reactions it stands for.
	Count int `json:"count,omitempty"`
	// At is the server time the message was accepted (for merged
	// reactions, the end of the merge interval).
	At time.Time `json:"at"`
}

// normalise checks msg as sent by a client and clears the fields the
// server assigns. maxText bounds the text in bytes.
func normalise(msg Message, maxText int) (Message, error) {
	msg.Seq, msg.Count, msg.From, msg.FromID, msg.FromName = 0, 0, "", "", ""
	msg.At = time.Time{}
	switch msg.Kind {
	case "":
		msg.Kind = KindChat
		fallthrough
	case KindChat, KindEvent:
		msg.Reaction = ""
		if len(msg.Text) > maxText {
			return msg, fmt.Errorf("%s text of %d bytes exceeds %d: %w", msg.Kind, len(msg.Text), maxText, ErrTooLarge)
		}
		if !utf8.ValidString(msg.Text) {
			return msg, fmt.Errorf("%s text is not UTF-8: %w", msg.Kind, ErrInvalid)
		}
		if strings.TrimSpace(msg.Text) == "" {
			return msg, fmt.Errorf("%s without text: %w", msg.Kind, ErrEmpty)
		}
	case KindReaction:
		msg.Text = ""
		if msg.To != "" {
			return msg, fmt.Errorf("reaction to member %q: reactions go to the room: %w", msg.To, ErrInvalid)
		}
		if len(msg.Reaction) > MaxReaction {
			return msg, fmt.Errorf("reaction of %d bytes exceeds %d: %w", len(msg.Reaction), MaxReaction, ErrTooLarge)
		}
		if !utf8.ValidString(msg.Reaction) {
			return msg, fmt.Errorf("reaction is not UTF-8: %w", ErrInvalid)
		}
		if strings.TrimSpace(msg.Reaction) == "" {
			return msg, fmt.Errorf("reaction without emoji: %w", ErrEmpty)
		}
	default:
		return msg, fmt.Errorf("kind %q: %w", msg.Kind, ErrUnknownKind)
	}
	return msg, nil
}
