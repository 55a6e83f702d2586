package signaling

import (
	"errors"

	"github.com/chorus-sfu/chorus/auth"
	"github.com/chorus-sfu/chorus/chat"
)

// Chat over the WebSocket: each room with WebSocket members has a chat.Room
// (created at the first join, closed when the last member leaves). WHIP and
// WHEP participants are not members.

// ChatOptions configure every room's chat (zero fields: package chat's
// defaults).
type ChatOptions struct {
	HistorySize int
	LargeRoom   int // above this many members, clients are notified and pull
	// PerSenderRate and PerSenderBurst bound each member's messages.
	PerSenderRate  float64
	PerSenderBurst float64
	// Archive, if set, receives every stored message of a room (e.g. to
	// write it next to the room's recording).
	Archive func(room string, m chat.Message)
}

// chatRoomLocked returns room's chat, creating it; s.mu is held.
func (s *Server) chatRoomLocked(room string) *chat.Room {
	cr := s.chats[room]
	if cr == nil {
		c := s.cfg.Chat
		o := chat.RoomOptions{Name: room, HistorySize: c.HistorySize, LargeRoom: c.LargeRoom,
			PerSenderRate: c.PerSenderRate, PerSenderBurst: c.PerSenderBurst, Logger: s.log.With("room", room)}
		if a := s.cfg.Chat.Archive; a != nil {
			o.Archive = func(m chat.Message) { a(room, m) }
		}
		cr = chat.NewRoom(o)
		cr.Start()
		s.chats[room] = cr
	}
	return cr
}

// joinChat makes the session a member of its room's chat and returns the
// history bounds for joined.
func (s *session) joinChat(room, pid, identity, name string) (*ChatInfo, error) {
	s.srv.mu.Lock()
	cr := s.srv.chatRoomLocked(room)
	s.srv.mu.Unlock()
	info, err := cr.Join(chat.Member{ID: pid, Identity: identity, Name: name,
		Deliver: func(ms []chat.Message) bool { return s.queueNonBlocking(Message{Type: TypeChat, Messages: ms}) },
		Notify: func(latest uint64) bool {
			return s.queueNonBlocking(Message{Type: TypeChatNotify, Chat: &ChatInfo{Latest: latest}})
		},
	})
	if err != nil {
		return nil, err
	}
	s.chat = cr
	return &ChatInfo{Oldest: info.Oldest, Latest: info.Latest, Epoch: cr.Epoch()}, nil
}

// leaveChat removes the session from its room's chat, closing the chat when
// no WebSocket member is left in the room. Called when the session ends.
func (s *Server) leaveChat(sess *session) {
	if sess.chat == nil {
		return
	}
	sess.chat.Leave(sess.pid)
	s.mu.Lock()
	var closeIt *chat.Room
	if len(s.rooms[sess.room]) == 0 && s.chats[sess.room] == sess.chat {
		closeIt = sess.chat
		delete(s.chats, sess.room)
	}
	s.mu.Unlock()
	if closeIt != nil {
		closeIt.Close()
	}
}

// chatRequest handles chat, reaction and chatHistory messages.
func (s *session) chatRequest(m Message) {
	if s.chat == nil {
		s.sendError(m.ID, protoErr(CodeBadRequest, "chat is not available"))
		return
	}
	if g := s.claims.Grants; !g.Has(auth.GrantData) {
		s.sendError(m.ID, protoErr(CodeNotPermitted, "the access token has no data grant: no chat"))
		return
	}
	switch m.Type {
	case TypeChatHistory:
		after := uint64(0)
		if m.After != nil {
			after = *m.After
		}
		ms, more := s.chat.History(after, m.Limit)
		oldest, latest := s.chat.Bounds()
		s.send(Message{Type: TypeChatHistory, ID: m.ID, Messages: ms, More: more,
			Chat: &ChatInfo{Oldest: oldest, Latest: latest, Epoch: s.chat.Epoch()}})
		return
	case TypeReaction:
		if _, err := s.chat.Send(s.pid, chat.Message{Kind: chat.KindReaction, Reaction: m.Reaction}); err != nil {
			s.sendError(m.ID, chatError(err))
		}
		return
	}
	sent, err := s.chat.Send(s.pid, chat.Message{Kind: chat.KindChat, Text: m.Text, To: m.To})
	if err != nil {
		s.sendError(m.ID, chatError(err))
		return
	}
	if m.ID != "" { // the sender learns the message's sequence number and time
		s.send(Message{Type: TypeChatSent, ID: m.ID, Messages: []chat.Message{sent}})
	}
}

// chatError maps the chat package's errors to protocol errors.
func chatError(err error) error {
	switch {
	case errors.Is(err, chat.ErrThrottled):
		return protoErr(CodeRateLimited, "%v", err)
	case errors.Is(err, chat.ErrOverloaded):
		return protoErr(CodeLimit, "%v", err)
	case errors.Is(err, chat.ErrUnknownRecipient):
		return protoErr(CodeNotFound, "%v", err)
	default:
		return protoErr(CodeBadRequest, "%v", err)
	}
}
