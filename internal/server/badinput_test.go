package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/internal/server"
	"github.com/chorus-sfu/chorus/signaling"
)

// rawWS is a bare WebSocket connection for sending hand-made messages.
type rawWS struct {
	t       *testing.T
	conn    *websocket.Conn
	skipped []signaling.Message // read while looking for another type
}

func dialRaw(t *testing.T, s *server.Server) *rawWS {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial(wsURL(s), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &rawWS{t: t, conn: conn}
}

func (w *rawWS) send(s string) {
	w.t.Helper()
	if err := w.conn.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		w.t.Fatal(err)
	}
}

// next reads messages until one of type typ arrives.
func (w *rawWS) next(typ string) signaling.Message {
	w.t.Helper()
	for i, m := range w.skipped {
		if m.Type == typ {
			w.skipped = append(w.skipped[:i], w.skipped[i+1:]...)
			return m
		}
	}
	_ = w.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, data, err := w.conn.ReadMessage()
		if err != nil {
			w.t.Fatalf("waiting for %s: %v", typ, err)
		}
		var m signaling.Message
		if err := json.Unmarshal(data, &m); err != nil {
			w.t.Fatalf("server sent bad JSON %q", data)
		}
		if m.Type == typ {
			return m
		}
		w.skipped = append(w.skipped, m)
	}
}

// expectClosed reads until the server closes the connection.
func (w *rawWS) expectClosed() {
	w.t.Helper()
	_ = w.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := w.conn.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) {
				w.t.Fatalf("connection not closed by the server: %v", err)
			}
			return
		}
	}
}

func (w *rawWS) expectError(code string) {
	w.t.Helper()
	m := w.next(signaling.TypeError)
	if m.Code != code {
		w.t.Fatalf("error code %q (%s), want %q", m.Code, m.Message, code)
	}
	if m.Message == "" {
		w.t.Fatalf("error %q without a message", code)
	}
}

// Bad input gets an error for that client only; another session in the same
// room keeps its media throughout.
func TestBadInputOnWebSocket(t *testing.T) {
	s := startServer(t)
	ctx := deadline(t, 60*time.Second)

	pub := newPeer(t, s, "room", "pub", nil)
	sub := newPeer(t, s, "room", "sub", nil)
	video := videoSource(t, "pub")
	pub.publish(ctx, video)
	pump(t, video, 5*time.Millisecond)
	v := sub.sink(ctx, webrtc.RTPCodecTypeVideo, "")
	if err := v.WaitFor(ctx, func(ix map[uint32]bool) bool { return len(ix) > 0 }); err != nil {
		t.Fatal(err)
	}

	w := dialRaw(t, s)
	w.send(`{"type":`)
	w.expectError(signaling.CodeBadJSON)
	w.send(`[1,2,3]`)
	w.expectError(signaling.CodeBadJSON)
	w.send(`{"type":"dance"}`)
	w.expectError(signaling.CodeUnknownType)
	w.send(`{"room":"x"}`)
	w.expectError(signaling.CodeBadRequest)
	w.send(`{"type":"offer","target":"publisher","sdp":"v=0"}`)
	w.expectError(signaling.CodeNotJoined)
	w.send(`{"type":"join","room":""}`)
	w.expectError(signaling.CodeBadRequest)
	w.send(`{"type":"join","room":"room","name":"` + strings.Repeat("n", 100) + `"}`)
	w.expectError(signaling.CodeBadRequest)
	w.send(`{"type":"join","room":"room","name":"bad"}`)
	w.next(signaling.TypeJoined)
	w.send(`{"type":"join","room":"room","name":"again"}`)
	w.expectError(signaling.CodeAlreadyJoined)
	w.send(`{"type":"offer","target":"subscriber","sdp":"v=0"}`)
	w.expectError(signaling.CodeBadRequest) // the server makes subscriber offers
	w.send(`{"type":"offer","target":"publisher","sdp":"this is not sdp"}`)
	w.expectError(signaling.CodeBadSDP)
	w.send(`{"type":"offer","target":"publisher","sdp":"v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"}`)
	w.expectError(signaling.CodeBadSDP)
	w.send(`{"type":"candidate","target":"subscriber","candidate":{"candidate":"garbage"}}`)
	w.expectError(signaling.CodeBadSDP)
	w.send(`{"type":"mute","trackId":"x"}`)
	w.expectError(signaling.CodeBadRequest)
	w.send(`{"type":"ping","id":"7"}`)
	if m := w.next(signaling.TypePong); m.ID != "7" {
		t.Fatalf("pong id %q", m.ID)
	}

	// an oversized message closes that connection with a too_large error
	w.send(`{"type":"ping","pad":"` + strings.Repeat("x", signaling.MaxMessageSize) + `"}`)
	w.expectError(signaling.CodeTooLarge)
	w.expectClosed()

	// an answer when no offer is pending is refused; a garbage answer to a
	// real offer ends the session (its subscriber connection is unusable)
	w2 := dialRaw(t, s)
	w2.send(`{"type":"join","room":"empty","name":"x"}`)
	w2.next(signaling.TypeJoined)
	w2.send(`{"type":"answer","target":"subscriber","sdp":"v=0"}`)
	w2.expectError(signaling.CodeBadRequest)
	w3 := dialRaw(t, s)
	w3.send(`{"type":"join","room":"room","name":"bad-answer"}`)
	w3.next(signaling.TypeOffer) // the room has a track for us
	w3.send(`{"type":"answer","target":"subscriber","sdp":"v=0"}`)
	w3.expectError(signaling.CodeBadSDP)
	w3.expectClosed()

	// the other session still receives media
	n := v.Count()
	if err := v.WaitFor(ctx, func(ix map[uint32]bool) bool { return len(ix) > n+50 }); err != nil {
		t.Fatal("the healthy subscriber lost its media:", err)
	}
	if errs := sub.c.Errors(); len(errs) > 0 {
		t.Fatalf("the healthy subscriber got errors: %+v", errs)
	}
}

// A client that vanishes in the middle of a negotiation is removed from
// the room and the others are told.
func TestPeerVanishesMidNegotiation(t *testing.T) {
	s := startServer(t)
	ctx := deadline(t, 30*time.Second)
	watcher := newPeer(t, s, "room", "watcher", nil)

	// joins, sends a real offer, and drops the TCP connection without reading the answer
	pc := newPC(t)
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	w := dialRaw(t, s)
	w.send(`{"type":"join","room":"room","name":"ghost"}`)
	joined := w.next(signaling.TypeJoined)
	b, _ := json.Marshal(signaling.Message{Type: signaling.TypeOffer, Target: signaling.TargetPublisher, SDP: offer.SDP})
	w.send(string(b))
	if tcp, ok := w.conn.NetConn().(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = w.conn.NetConn().Close()

	watcher.wait(ctx, "ghost to leave", func() bool {
		return watcher.hasEvent(signaling.TypeParticipantLeft, func(m signaling.Message) bool {
			return m.Participant.ID == joined.Participant.ID
		})
	})
	r, _ := s.SFU().Rooms().Get("room")
	if _, ok := r.FindParticipant("ghost"); ok {
		t.Fatal("ghost is still in the room")
	}
}

// A client that stops reading is cut off without slowing the room down.
func TestServerSurvivesClosedClients(t *testing.T) {
	s := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 20; i++ {
		w := dialRaw(t, s)
		w.send(`{"type":"join","room":"churn","name":"c"}`)
		w.next(signaling.TypeJoined)
		_ = w.conn.Close()
	}
	waitRoomGone(t, ctx, s, "churn")
}
