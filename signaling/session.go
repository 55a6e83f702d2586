package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/auth"
	"github.com/chorus-sfu/chorus/chat"
	"github.com/chorus-sfu/chorus/recorder/store"
	"github.com/chorus-sfu/chorus/sfu"
)

const (
	outQueueSize = 256
	writeTimeout = 10 * time.Second
	pongWait     = 60 * time.Second
	pingPeriod   = 25 * time.Second
	// answerTimeout bounds the wait for the answer to a subscriber offer.
	answerTimeout = 20 * time.Second
	// recordingTimeout bounds a startRecording or stopRecording request.
	recordingTimeout = 30 * time.Second
	// lingerTime bounds the drain of a closing connection.
	lingerTime = time.Second
)

// session is one WebSocket connection: a reader goroutine, a writer
// goroutine, and the loop goroutine (run) that owns all negotiation state.
type session struct {
	srv  *Server
	conn *websocket.Conn
	log  *slog.Logger

	in     chan []byte     // reader -> loop
	out    chan []byte     // anyone -> writer
	negot  chan struct{}   // subscriber negotiation needed (cap 1)
	failed chan sfu.Target // connection failures (cap 2)
	done   chan struct{}   // closed when the session ends
	once   sync.Once
	wg     sync.WaitGroup
	ctx    context.Context // cancelled when the session ends
	cancel context.CancelFunc
	// recBusy holds a token while a recording request runs (cap 1).
	recBusy chan struct{}

	// guarded by srv.mu
	room       string // the room joined, once the session receives its recording notices
	pid        string // the participant's ID in it
	recNotices int    // recording notices queued so far

	// set before run
	urlToken string // access token from the WebSocket URL or headers

	// owned by the loop goroutine until it ends, then read by the server
	reserved string       // the room counted for this session (limits)
	claims   *auth.Claims // the access token's, once joined
	chat     *chat.Room   // the room's chat, once joined
	rate     bucket       // message rate limit
	limited  int          // messages refused by the rate limit in a row

	// owned by the loop goroutine
	p           *sfu.Participant
	negotiating bool // a server offer awaits the client's answer
	pending     bool // another offer is needed after it
	answerTimer *time.Timer
}

func newSession(srv *Server, conn *websocket.Conn) *session {
	ctx, cancel := context.WithCancel(context.Background())
	return &session{
		srv: srv, conn: conn, log: srv.log.With("remote", conn.RemoteAddr().String()),
		in: make(chan []byte, 16), out: make(chan []byte, outQueueSize),
		negot: make(chan struct{}, 1), failed: make(chan sfu.Target, 2), done: make(chan struct{}),
		ctx: ctx, cancel: cancel, recBusy: make(chan struct{}, 1),
	}
}

// stop ends the session; safe to call from any goroutine, any number of times.
func (s *session) stop() {
	s.once.Do(func() {
		close(s.done)
		s.cancel()
	})
}

// run serves the connection until it closes; every goroutine the session
// started has ended on return.
func (s *session) run() {
	// Messages up to twice the limit are read so that the client is told
	// why it is closed; larger ones are refused by the WebSocket layer (1009).
	s.conn.SetReadLimit(2 * MaxMessageSize)
	var writer sync.WaitGroup
	s.wg.Add(1)
	writer.Add(1)
	go s.readLoop()
	go func() {
		defer writer.Done()
		s.writeLoop()
	}()
	s.loop()
	s.stop()
	if s.p != nil {
		s.p.Close()
	}
	writer.Wait() // the writer flushes what is queued (errors, close frame)
	// Half-close, then drain what the client still sends for a moment:
	// closing a socket with unread data resets the connection, and the
	// client would lose the last messages (why it is disconnected).
	if cw, ok := s.conn.UnderlyingConn().(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	linger := time.AfterFunc(lingerTime, func() { _ = s.conn.Close() })
	s.wg.Wait() // the reader ends at the client's close, or when linger closes the socket
	linger.Stop()
	_ = s.conn.Close()
}

func (s *session) readLoop() {
	defer s.wg.Done()
	defer s.stop()
	_ = s.conn.SetReadDeadline(time.Now().Add(pongWait))
	s.conn.SetPongHandler(func(string) error { return s.conn.SetReadDeadline(time.Now().Add(pongWait)) })
	for {
		kind, data, err := s.conn.ReadMessage()
		if err != nil {
			return
		}
		select {
		case <-s.done:
			continue // closing: drain and discard until the linger deadline
		default:
		}
		_ = s.conn.SetReadDeadline(time.Now().Add(pongWait))
		if kind != websocket.TextMessage {
			s.sendError("", protoErr(CodeBadJSON, "binary messages are not supported"))
			continue
		}
		select {
		case s.in <- data:
		case <-s.done:
		}
	}
}

// closeAfterFlush asks the writer to send a close frame after queued messages.
func (s *session) closeAfterFlush(code int, reason string) {
	select {
	case s.out <- closeFrame(code, reason):
	default:
		s.stop() // no room for the close frame: end the session anyway
	}
}

func closeFrame(code int, reason string) []byte {
	return append([]byte{0}, websocket.FormatCloseMessage(code, reason)...)
}

func (s *session) writeLoop() {
	ping := time.NewTicker(pingPeriod)
	defer ping.Stop()
	for {
		select {
		case data := <-s.out:
			_ = s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			if len(data) > 0 && data[0] == 0 { // close frame
				_ = s.conn.WriteMessage(websocket.CloseMessage, data[1:])
				s.stop()
				return
			}
			if err := s.conn.WriteMessage(websocket.TextMessage, data); err != nil {
				s.stop()
				return
			}
		case <-ping.C:
			_ = s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := s.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				s.stop()
				return
			}
		case <-s.done:
			// flush what is queued, best effort, then leave
			for {
				select {
				case data := <-s.out:
					_ = s.conn.SetWriteDeadline(time.Now().Add(time.Second))
					if len(data) > 0 && data[0] == 0 {
						_ = s.conn.WriteMessage(websocket.CloseMessage, data[1:])
						return
					}
					if s.conn.WriteMessage(websocket.TextMessage, data) != nil {
						return
					}
				default:
					return
				}
			}
		}
	}
}

// send queues a message. A client that does not read its messages fast
// enough to keep the queue from filling is disconnected.
func (s *session) send(m Message) {
	data, err := json.Marshal(m)
	if err != nil {
		s.log.Error("marshal message", "type", m.Type, "err", err)
		return
	}
	s.queue(data)
}

// queue is send for a message already encoded.
func (s *session) queue(data []byte) {
	select {
	case s.out <- data:
		s.srv.msgsOut.Add(1)
	case <-s.done:
	default:
		s.log.Warn("client too slow, closing")
		s.stop()
	}
}

func (s *session) sendError(id string, err error) { s.send(errorMsg(id, err)) }

// queueNonBlocking queues m for a callback that must not block (chat
// delivery); it reports false, and the session ends, when the client is too
// slow.
func (s *session) queueNonBlocking(m Message) bool {
	data, err := json.Marshal(m)
	if err != nil {
		s.log.Error("marshal message", "type", m.Type, "err", err)
		return true
	}
	select {
	case s.out <- data:
		s.srv.msgsOut.Add(1)
		return true
	case <-s.done:
		return false
	default:
		s.log.Warn("client too slow for the chat, closing")
		s.stop()
		return false
	}
}

// errorMsg is the error message that reports err to a client.
func errorMsg(id string, err error) Message {
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		pe = classify(err)
	}
	return Message{Type: TypeError, ID: id, Code: pe.Code, Message: pe.Msg}
}

// classify maps sfu errors to protocol errors.
func classify(err error) *ProtocolError {
	switch {
	case errors.Is(err, sfu.ErrBadSDP):
		return protoErr(CodeBadSDP, "%s", strings.TrimPrefix(err.Error(), "sfu: "))
	case errors.Is(err, sfu.ErrDataNotPermitted):
		return protoErr(CodeNotPermitted, "%s", strings.TrimPrefix(err.Error(), "sfu: "))
	case errors.Is(err, sfu.ErrDataTooLarge):
		return protoErr(CodeTooLarge, "%s", strings.TrimPrefix(err.Error(), "sfu: "))
	case errors.Is(err, sfu.ErrDataRate):
		return protoErr(CodeRateLimited, "%s", strings.TrimPrefix(err.Error(), "sfu: "))
	case errors.Is(err, sfu.ErrDataUnknownRecipient):
		return protoErr(CodeNotFound, "%s", strings.TrimPrefix(err.Error(), "sfu: "))
	case errors.Is(err, sfu.ErrDataMalformed):
		return protoErr(CodeBadRequest, "%s", strings.TrimPrefix(err.Error(), "sfu: "))
	case errors.Is(err, sfu.ErrNoPublisher), errors.Is(err, sfu.ErrNoSubscriber), errors.Is(err, sfu.ErrTrackNotFound):
		return protoErr(CodeBadRequest, "%s", strings.TrimPrefix(err.Error(), "sfu: "))
	// errors of the RecordingControl
	case errors.Is(err, store.ErrForbidden):
		return protoErr(CodeNotPermitted, "%s", err.Error())
	case errors.Is(err, store.ErrUnknownRoom), errors.Is(err, store.ErrUnknownParticipant):
		return protoErr(CodeNotFound, "%s", err.Error())
	case errors.Is(err, store.ErrAlreadyRecording):
		return protoErr(CodeAlreadyRecording, "%s", err.Error())
	case errors.Is(err, store.ErrNotRecording):
		return protoErr(CodeNotRecording, "%s", err.Error())
	case errors.Is(err, store.ErrBadRequest):
		return protoErr(CodeBadRequest, "%s", err.Error())
	default:
		return protoErr(CodeInternal, "%s", err.Error())
	}
}

func (s *session) loop() {
	defer func() {
		if s.answerTimer != nil {
			s.answerTimer.Stop()
		}
	}()
	for {
		var answerDeadline <-chan time.Time
		if s.negotiating && s.answerTimer != nil {
			answerDeadline = s.answerTimer.C
		}
		select {
		case <-answerDeadline:
			s.sendError("", protoErr(CodeBadRequest, "no answer to the subscriber offer within %v", answerTimeout))
			s.closeAfterFlush(websocket.ClosePolicyViolation, "no answer")
			return
		case <-s.done:
			return
		case data := <-s.in:
			s.srv.msgsIn.Add(1)
			if !s.admitMessage() {
				return
			}
			m, err := Decode(data)
			if err != nil {
				s.sendError(m.ID, err)
				var pe *ProtocolError
				if errors.As(err, &pe) && pe.Code == CodeTooLarge {
					s.closeAfterFlush(websocket.CloseMessageTooBig, "message too large")
					return
				}
				continue
			}
			if !s.handle(m) {
				return
			}
		case <-s.negot:
			s.negotiate()
		case target := <-s.failed:
			s.sendError("", protoErr(CodeConnectionFailed, "%s connection failed", target))
			s.closeAfterFlush(websocket.CloseNormalClosure, "connection failed")
			return
		}
	}
}

// handle processes one valid message; it returns false when the session ends.
func (s *session) handle(m Message) bool {
	if m.Type == TypePing {
		s.send(Message{Type: TypePong, ID: m.ID})
		return true
	}
	if m.Type == TypeJoin {
		if s.p != nil {
			s.sendError(m.ID, protoErr(CodeAlreadyJoined, "already joined room %q", s.p.Room().Name()))
			return true
		}
		s.join(m)
		return true
	}
	if s.p == nil {
		s.sendError(m.ID, protoErr(CodeNotJoined, "%q before join", m.Type))
		return true
	}
	switch m.Type {
	case TypeLeave:
		s.closeAfterFlush(websocket.CloseNormalClosure, "left")
		return false
	case TypeOffer:
		if m.Target != TargetPublisher {
			s.sendError(m.ID, protoErr(CodeBadRequest, "the server makes subscriber offers; offer target must be publisher"))
			return true
		}
		if err := s.srv.checkTracks(m.SDP); err != nil {
			s.sendError(m.ID, err)
			return true
		}
		if len(m.Sources) > 0 {
			s.p.SetTrackSources(m.Sources)
		}
		ans, err := s.p.HandlePublisherOffer(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m.SDP})
		if err != nil {
			s.sendError(m.ID, err)
			return true
		}
		s.send(Message{Type: TypeAnswer, ID: m.ID, Target: TargetPublisher, SDP: ans.SDP})
	case TypeAnswer:
		if m.Target != TargetSubscriber || !s.negotiating {
			s.sendError(m.ID, protoErr(CodeBadRequest, "no server offer is waiting for an answer"))
			return true
		}
		s.negotiating = false
		s.answerTimer.Stop()
		if err := s.p.HandleSubscriberAnswer(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP}); err != nil {
			// The subscriber connection cannot be renegotiated after a
			// rejected answer (no rollback of a local offer in pion).
			s.sendError(m.ID, err)
			s.closeAfterFlush(websocket.CloseNormalClosure, "unusable answer")
			return false
		}
		if s.pending {
			s.pending = false
			s.negotiate()
		}
	case TypeCandidate:
		if err := s.p.AddICECandidate(sfu.Target(m.Target), *m.Candidate); err != nil {
			s.sendError(m.ID, err)
		}
	case TypeMute:
		if err := s.p.SetTrackMuted(m.TrackID, *m.Muted); err != nil {
			s.sendError(m.ID, err)
		}
	case TypeTrackSettings:
		if err := s.p.SetTrackSettings(m.TrackID, sfu.TrackSettings{MaxLayer: m.MaxLayer, MaxHeight: m.MaxHeight, Paused: m.Paused}); err != nil {
			s.sendError(m.ID, err)
		}
	case TypeStartRecording, TypeStopRecording:
		s.recordingRequest(m)
	case TypeChat, TypeReaction, TypeChatHistory:
		s.chatRequest(m)
	}
	return true
}

// recordingRequest starts or stops a recording of the session's room. The
// recorder is called on a goroutine of its own, so that the session keeps
// negotiating meanwhile; a session runs one such request at a time. The
// reply (recordingStarted, recordingStopped or error) carries m.ID.
func (s *session) recordingRequest(m Message) {
	ctl := s.srv.cfg.Recording
	if !s.srv.canRecord() {
		s.sendError(m.ID, protoErr(CodeNotPermitted, "clients may not start or stop recordings on this server"))
		return
	}
	if g := s.claims.Grants; !g.Record && !g.Admin {
		s.sendError(m.ID, protoErr(CodeNotPermitted, "the access token has no record grant"))
		return
	}
	room := s.p.Room().Name()
	if m.Room != "" && m.Room != room {
		s.sendError(m.ID, protoErr(CodeNotPermitted, "a client can only record its own room"))
		return
	}
	select {
	case s.recBusy <- struct{}{}:
	default:
		s.sendError(m.ID, protoErr(CodeBadRequest, "another startRecording or stopRecording is in progress"))
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		reply := s.runRecordingRequest(ctl, room, m)
		<-s.recBusy // free before the reply: a client that waits for it may send the next request at once
		s.send(reply)
	}()
}

// runRecordingRequest calls the recorder and returns the reply to m.
func (s *session) runRecordingRequest(ctl RecordingControl, room string, m Message) Message {
	ctx, cancel := context.WithTimeout(s.ctx, recordingTimeout)
	defer cancel()
	var err error
	if m.Type == TypeStartRecording {
		var ids []string
		if ids, err = ctl.StartRecording(ctx, room, m.ParticipantID); err == nil {
			return Message{Type: TypeRecordingStarted, ID: m.ID, ParticipantID: m.ParticipantID, Recorded: ids}
		}
	} else if err = ctl.StopRecording(ctx, room, m.ParticipantID); err == nil {
		return Message{Type: TypeRecordingStopped, ID: m.ID, ParticipantID: m.ParticipantID}
	}
	return errorMsg(m.ID, err)
}

// admitMessage applies the connection's message rate limit. A refused
// message gets a rate_limited error (one per burst); a client that goes on
// sending a whole burst's worth past the limit is disconnected. It returns
// false when the session ends.
func (s *session) admitMessage() bool {
	l := s.srv.cfg.Limits
	if l.MessagesPerSecond <= 0 {
		return true
	}
	burst := max(l.MessageBurst, 1)
	if s.rate.take(time.Now(), l.MessagesPerSecond, burst) {
		s.limited = 0
		return true
	}
	s.srv.rateLimited.Add(1)
	s.limited++
	if s.limited == 1 {
		s.sendError("", protoErr(CodeRateLimited, "more than %g messages per second: message dropped", l.MessagesPerSecond))
	}
	if s.limited > burst {
		s.log.Warn("disconnecting a client over its message rate", "limit", l.MessagesPerSecond)
		s.sendError("", protoErr(CodeRateLimited, "disconnected: messages far above %g per second", l.MessagesPerSecond))
		s.closeAfterFlush(websocket.ClosePolicyViolation, "rate limit")
		return false
	}
	return true
}

func (s *session) join(m Message) {
	token := m.Token
	if token == "" {
		token = s.urlToken
	}
	claims, err := s.srv.authorize(token, m.Room, auth.GrantJoin)
	if err != nil {
		s.sendError(m.ID, err)
		return
	}
	if err := s.srv.reserve(m.Room); err != nil {
		s.sendError(m.ID, err)
		return
	}
	s.reserved = m.Room
	name := m.Name
	if s.srv.cfg.Auth != nil && claims.Name != "" {
		name = claims.Name // the token's name wins over the client's
	}
	if name == "" {
		name = claims.Identity()
	}
	s.claims = claims
	g := claims.Grants
	publish, subscribe, data := g.Publish || g.Admin, g.Subscribe || g.Admin, g.Data || g.Admin
	p, err := s.srv.sfu.Join(m.Room, sfu.JoinOptions{
		Name: name, Listener: (*sessionListener)(s),
		Publish: publish, Subscribe: subscribe, AutoSubscribe: subscribe,
		Data: m.Data, DataSend: data,
		// runs under the room's lock: joined precedes every later event
		OnJoined: func(self sfu.ParticipantInfo, others []sfu.ParticipantInfo) {
			list := make([]Participant, 0, len(others))
			for _, pi := range others {
				list = append(list, participantMsg(pi))
			}
			me := participantMsg(self)
			joined := Message{Type: TypeJoined, ID: m.ID, Room: m.Room, Participant: &me, Participants: list,
				CanRecord: s.srv.canRecord() && (g.Record || g.Admin)}
			if s.srv.cfg.Auth != nil {
				joined.Identity, joined.CanPublish, joined.CanSubscribe, joined.CanData = claims.Identity(), &publish, &subscribe, &data
			}
			if f := s.srv.cfg.ICEServers; f != nil {
				joined.ICEServers = f(claims.Identity())
			}
			s.send(joined)
		},
	})
	if err != nil {
		s.srv.release(m.Room)
		s.reserved = ""
		s.sendError(m.ID, err)
		return
	}
	s.p = p
	s.srv.addToRoom(s, p.Room().Name(), p.ID())
	// notify, then pull: the client learns what history exists
	if info, err := s.joinChat(p.Room().Name(), p.ID(), claims.Identity(), name); err != nil {
		s.log.Warn("chat unavailable", "err", err)
	} else {
		s.send(Message{Type: TypeChatNotify, Chat: info})
	}
}

// negotiate sends a server offer on the subscriber connection, or marks
// that one is needed once the current one is answered.
func (s *session) negotiate() {
	if s.p == nil {
		return
	}
	if s.negotiating {
		s.pending = true
		return
	}
	offer, err := s.p.CreateSubscriberOffer()
	if err != nil {
		s.log.Warn("subscriber offer failed", "err", err)
		s.sendError("", err)
		return
	}
	s.negotiating = true
	if s.answerTimer == nil {
		s.answerTimer = time.NewTimer(answerTimeout)
	} else {
		s.answerTimer.Reset(answerTimeout)
	}
	s.send(Message{Type: TypeOffer, Target: TargetSubscriber, SDP: offer.SDP})
}

func participantMsg(p sfu.ParticipantInfo) Participant {
	out := Participant{ID: p.ID, Name: p.Name, Tracks: []Track{}}
	for _, t := range p.Tracks {
		out.Tracks = append(out.Tracks, trackMsg(t))
	}
	return out
}

func trackMsg(t sfu.TrackInfo) Track {
	return Track{ID: t.ID, ParticipantID: t.ParticipantID, Kind: t.Kind.String(), Codec: t.MimeType,
		Muted: t.Muted, PublisherTrackID: t.PublisherTrackID, Source: t.Source}
}

// sessionListener turns sfu events into messages. Its methods never block.
type sessionListener session

func (l *sessionListener) s() *session { return (*session)(l) }

func (l *sessionListener) ParticipantJoined(p sfu.ParticipantInfo) {
	pm := participantMsg(p)
	l.s().send(Message{Type: TypeParticipantJoined, Participant: &pm})
}

func (l *sessionListener) ParticipantLeft(p sfu.ParticipantInfo) {
	pm := participantMsg(p)
	l.s().send(Message{Type: TypeParticipantLeft, Participant: &pm})
}

func (l *sessionListener) TrackPublished(t sfu.TrackInfo) {
	tm := trackMsg(t)
	l.s().send(Message{Type: TypeTrackPublished, Track: &tm})
}

func (l *sessionListener) TrackUnpublished(t sfu.TrackInfo) {
	tm := trackMsg(t)
	l.s().send(Message{Type: TypeTrackUnpublished, Track: &tm})
}

func (l *sessionListener) TrackMuted(t sfu.TrackInfo) {
	tm := trackMsg(t)
	l.s().send(Message{Type: TypeTrackMuted, Track: &tm})
}

func (l *sessionListener) LayerChanged(trackID string, layer int, reason string) {
	l.s().send(Message{Type: TypeLayerChanged, TrackID: trackID, Layer: &layer, Reason: reason})
}

func (l *sessionListener) PublisherLayers(t sfu.TrackInfo, active []bool) {
	tm := trackMsg(t)
	l.s().send(Message{Type: TypePublisherLayers, Track: &tm, Active: active})
}

func (l *sessionListener) DataRejected(err error) {
	m := errorMsg("", err)
	m.Target = TargetData // not the session's: one data message was dropped
	l.s().send(m)
}

func (l *sessionListener) SubscriberNegotiationNeeded() {
	select {
	case l.negot <- struct{}{}:
	default: // already signalled
	}
}

func (l *sessionListener) ConnectionFailed(t sfu.Target) {
	select {
	case l.failed <- t:
	default:
	}
}
