// Package client is a Go client of the Chorus signaling protocol, for tests,
// the load tool and native Go applications. It keeps the two PeerConnections
// of a participant: it offers its own tracks on the publisher connection and
// answers the server's offers on the subscriber connection.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/signaling"
)

// ErrServer wraps an error message from the server.
var ErrServer = errors.New("client: server error")

// ServerError is the error message the server sent in reply to a request;
// errors.Is(err, ErrServer) holds for it.
type ServerError struct {
	Code    string // e.g. signaling.CodeNotPermitted
	Message string
}

func (e *ServerError) Error() string { return fmt.Sprintf("%v: %s: %s", ErrServer, e.Code, e.Message) }

// Is makes a ServerError match ErrServer.
func (e *ServerError) Is(target error) bool { return target == ErrServer }

// Options configure a client.
type Options struct {
	// API creates the PeerConnections (default: NewAPI(nil)).
	API *webrtc.API
	// OnTrack is called for each track received on the subscriber connection.
	OnTrack func(*webrtc.TrackRemote, *webrtc.RTPReceiver)
	// Events receives every server notification (participantJoined, ...);
	// it must not block for long. Optional.
	Events func(signaling.Message)
	// Token is the access token sent with join (empty: none).
	Token string
	// Config is the base configuration of the PeerConnections (ICE
	// servers, transport policy); the ICE servers the server names in
	// joined are added to it.
	Config webrtc.Configuration
	// Data asks, at join, for the app data channels; OnData receives what
	// arrives on them (on the channel's goroutine: it must not block long).
	Data   bool
	OnData func(DataMessage)
}

// NewAPI returns a pion API with the default codecs and interceptors that
// connects over loopback only (for tests on one machine); configure may add
// interceptors (e.g. packet droppers, which then run before the defaults)
// and change settings.
func NewAPI(configure func(*interceptor.Registry, *webrtc.SettingEngine)) (*webrtc.API, error) {
	return NewAPIWith(func(me *webrtc.MediaEngine, ir *interceptor.Registry, se *webrtc.SettingEngine) error {
		if err := me.RegisterDefaultCodecs(); err != nil {
			return err
		}
		if configure != nil {
			configure(ir, se)
		}
		return nil
	})
}

// NewAPIWith is NewAPI where configure also registers the codecs (on an
// empty media engine: call RegisterDefaultCodecs for pion's defaults), e.g.
// to add audio/red or to leave RTX out.
func NewAPIWith(configure func(*webrtc.MediaEngine, *interceptor.Registry, *webrtc.SettingEngine) error) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	ir := &interceptor.Registry{}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if configure != nil {
		if err := configure(me, ir, &se); err != nil {
			return nil, err
		}
	}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		return nil, err
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// maxErrors bounds the errors a client keeps (see Errors).
const maxErrors = 1000

// Client is one participant.
type Client struct {
	opts Options
	conn *websocket.Conn

	wmu sync.Mutex // serialises websocket writes

	mu       sync.Mutex
	pub, sub *webrtc.PeerConnection
	// candidates wait until the description they belong to has been sent
	sdpSent  map[string]bool
	pendingC map[string][]webrtc.ICECandidateInit
	sources  map[string]string
	waiters  map[string]chan signaling.Message // by request id
	nextID   int
	self     signaling.Participant
	errs     []signaling.Message
	dcs      map[string]*webrtc.DataChannel // open app data channels by label
	dataOpen chan struct{}                  // closed when both are open
	dataOnce sync.Once

	done chan struct{}
	wg   sync.WaitGroup
}

// Dial connects to a Chorus WebSocket URL (ws://host:port/ws).
func Dial(ctx context.Context, url string, opts Options) (*Client, error) {
	if opts.API == nil {
		api, err := NewAPI(nil)
		if err != nil {
			return nil, err
		}
		opts.API = api
	}
	conn, _, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
	if err != nil {
		return nil, fmt.Errorf("client: dial %s: %w", url, err)
	}
	c := &Client{opts: opts, conn: conn, waiters: map[string]chan signaling.Message{}, done: make(chan struct{}),
		sdpSent: map[string]bool{}, pendingC: map[string][]webrtc.ICECandidateInit{},
		dcs: map[string]*webrtc.DataChannel{}, dataOpen: make(chan struct{})}
	c.wg.Add(1)
	go c.readLoop()
	return c, nil
}

// Send writes one raw message.
func (c *Client) Send(m signaling.Message) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return c.SendRaw(data)
}

// SendRaw writes raw bytes as one text message (for tests of bad input).
func (c *Client) SendRaw(data []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.conn.WriteMessage(websocket.TextMessage, data)
}

// request sends m with a fresh id and waits for the reply with that id.
func (c *Client) request(ctx context.Context, m signaling.Message) (signaling.Message, error) {
	c.mu.Lock()
	c.nextID++
	m.ID = fmt.Sprint(c.nextID)
	ch := make(chan signaling.Message, 1)
	c.waiters[m.ID] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiters, m.ID)
		c.mu.Unlock()
	}()
	if err := c.Send(m); err != nil {
		return signaling.Message{}, err
	}
	select {
	case r := <-ch:
		if r.Type == signaling.TypeError {
			return r, &ServerError{Code: r.Code, Message: r.Message}
		}
		return r, nil
	case <-ctx.Done():
		return signaling.Message{}, ctx.Err()
	case <-c.done:
		return signaling.Message{}, net.ErrClosed
	}
}

// Join joins a room and returns the joined message.
func (c *Client) Join(ctx context.Context, room, name string) (signaling.Message, error) {
	r, err := c.request(ctx, signaling.Message{Type: signaling.TypeJoin, Room: room, Name: name, Token: c.opts.Token, Data: c.opts.Data})
	if err == nil && r.Participant != nil {
		c.mu.Lock()
		c.self = *r.Participant
		for _, s := range r.ICEServers {
			c.opts.Config.ICEServers = append(c.opts.Config.ICEServers,
				webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
		}
		c.mu.Unlock()
	}
	return r, err
}

// ID is the participant id assigned at join.
func (c *Client) ID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.self.ID
}

// publisherPC returns the publisher connection, creating it on first use.
func (c *Client) publisherPC() (*webrtc.PeerConnection, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pub == nil {
		pc, err := c.newPC(signaling.TargetPublisher)
		if err != nil {
			return nil, err
		}
		c.pub = pc
	}
	return c.pub, nil
}

// Publish adds tracks to the publisher connection and negotiates them.
func (c *Client) Publish(ctx context.Context, tracks ...webrtc.TrackLocal) ([]*webrtc.RTPSender, error) {
	pc, err := c.publisherPC()
	if err != nil {
		return nil, err
	}
	var senders []*webrtc.RTPSender
	for _, t := range tracks {
		tr, err := pc.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return nil, err
		}
		senders = append(senders, tr.Sender())
	}
	if err := c.negotiatePublisher(ctx, pc); err != nil {
		return nil, err
	}
	return senders, nil
}

// PublishSimulcast publishes one track as simulcast layers (tracks with
// the same id and stream id and distinct RIDs, lowest quality first).
func (c *Client) PublishSimulcast(ctx context.Context, layers ...webrtc.TrackLocal) (*webrtc.RTPSender, error) {
	if len(layers) == 0 {
		return nil, errors.New("client: no layers")
	}
	pc, err := c.publisherPC()
	if err != nil {
		return nil, err
	}
	tr, err := pc.AddTransceiverFromTrack(layers[0], webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return nil, err
	}
	for _, l := range layers[1:] {
		if err := tr.Sender().AddEncoding(l); err != nil {
			return nil, err
		}
	}
	return tr.Sender(), c.negotiatePublisher(ctx, pc)
}

// SetTrackSettings tells the server the subscriber's wishes for a track:
// its maximum simulcast layer and whether it is paused (nil: unchanged).
func (c *Client) SetTrackSettings(trackID string, maxLayer *int, paused *bool) error {
	return c.Send(signaling.Message{Type: signaling.TypeTrackSettings, TrackID: trackID, MaxLayer: maxLayer, Paused: paused})
}

// SetMaxHeight asks for the highest layer of a track whose frames are at
// most h pixels high (0: no limit).
func (c *Client) SetMaxHeight(trackID string, h int) error {
	return c.Send(signaling.Message{Type: signaling.TypeTrackSettings, TrackID: trackID, MaxHeight: &h})
}

// SetSource declares what a track about to be published shows ("camera",
// "screen", "microphone"); it is sent with the next publisher offer.
func (c *Client) SetSource(trackID, source string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sources == nil {
		c.sources = map[string]string{}
	}
	c.sources[trackID] = source
}

// Unpublish stops sending the tracks of senders and renegotiates.
func (c *Client) Unpublish(ctx context.Context, senders ...*webrtc.RTPSender) error {
	pc := c.Publisher()
	if pc == nil {
		return errors.New("client: nothing published")
	}
	for _, s := range senders {
		if err := pc.RemoveTrack(s); err != nil {
			return err
		}
	}
	return c.negotiatePublisher(ctx, pc)
}

func (c *Client) negotiatePublisher(ctx context.Context, pc *webrtc.PeerConnection) error {
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		return err
	}
	c.mu.Lock()
	sources := c.sources
	c.mu.Unlock()
	r, err := c.request(ctx, signaling.Message{Type: signaling.TypeOffer, Target: signaling.TargetPublisher,
		SDP: offer.SDP, Sources: sources})
	if err != nil {
		return err
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: r.SDP}); err != nil {
		return err
	}
	c.sdpDelivered(signaling.TargetPublisher)
	return nil
}

// StartRecording asks the server to record participant (an ID; empty: the
// whole room) of the client's room and returns the IDs of the participants
// whose recording started. The server's refusals are *ServerError values
// (signaling.CodeNotPermitted, CodeAlreadyRecording, ...). Recording
// notices arrive as Events of type signaling.TypeRecording.
func (c *Client) StartRecording(ctx context.Context, participant string) ([]string, error) {
	r, err := c.request(ctx, signaling.Message{Type: signaling.TypeStartRecording, ParticipantID: participant})
	if err != nil {
		return nil, err
	}
	if r.Type != signaling.TypeRecordingStarted {
		return nil, fmt.Errorf("client: %s in reply to %s", r.Type, signaling.TypeStartRecording)
	}
	return r.Recorded, nil
}

// StopRecording asks the server to stop recording participant (empty: every
// recording of the client's room).
func (c *Client) StopRecording(ctx context.Context, participant string) error {
	r, err := c.request(ctx, signaling.Message{Type: signaling.TypeStopRecording, ParticipantID: participant})
	if err != nil {
		return err
	}
	if r.Type != signaling.TypeRecordingStopped {
		return fmt.Errorf("client: %s in reply to %s", r.Type, signaling.TypeStopRecording)
	}
	return nil
}

// Publisher and Subscriber return the client's PeerConnections (nil until used).
func (c *Client) Publisher() *webrtc.PeerConnection {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pub
}

// Subscriber returns the subscriber PeerConnection (nil until the first server offer).
func (c *Client) Subscriber() *webrtc.PeerConnection {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sub
}

// Errors returns the unsolicited error messages received so far.
func (c *Client) Errors() []signaling.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]signaling.Message(nil), c.errs...)
}

// sdpDelivered sends the candidates gathered before target's description
// went out.
func (c *Client) sdpDelivered(target string) {
	c.mu.Lock()
	c.sdpSent[target] = true
	pending := c.pendingC[target]
	c.pendingC[target] = nil
	c.mu.Unlock()
	for i := range pending {
		_ = c.Send(signaling.Message{Type: signaling.TypeCandidate, Target: target, Candidate: &pending[i]})
	}
}

// newPC creates a PeerConnection that trickles its candidates to the server.
func (c *Client) newPC(target string) (*webrtc.PeerConnection, error) {
	cfg := c.opts.Config // the callers hold c.mu
	cfg.BundlePolicy = webrtc.BundlePolicyMaxBundle
	pc, err := c.opts.API.NewPeerConnection(cfg)
	if err != nil {
		return nil, err
	}
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand == nil {
			return
		}
		init := cand.ToJSON()
		c.mu.Lock()
		if !c.sdpSent[target] {
			c.pendingC[target] = append(c.pendingC[target], init)
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		_ = c.Send(signaling.Message{Type: signaling.TypeCandidate, Target: target, Candidate: &init})
	})
	if target == signaling.TargetSubscriber && c.opts.OnTrack != nil {
		pc.OnTrack(c.opts.OnTrack)
	}
	if target == signaling.TargetSubscriber {
		pc.OnDataChannel(c.onDataChannel)
	}
	return pc, nil
}

func (c *Client) readLoop() {
	defer c.wg.Done()
	defer close(c.done)
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		var m signaling.Message
		if err := json.Unmarshal(data, &m); err != nil {
			continue
		}
		c.dispatch(m)
	}
}

func (c *Client) dispatch(m signaling.Message) {
	if m.ID != "" {
		c.mu.Lock()
		ch, ok := c.waiters[m.ID]
		c.mu.Unlock()
		if ok {
			ch <- m
			return
		}
	}
	switch m.Type {
	case signaling.TypeOffer:
		if err := c.answerSubscriber(m.SDP); err != nil {
			c.mu.Lock()
			c.errs = append(c.errs, signaling.Message{Type: signaling.TypeError, Code: "client", Message: err.Error()})
			c.mu.Unlock()
		}
	case signaling.TypeError:
		c.mu.Lock()
		if len(c.errs) < maxErrors {
			c.errs = append(c.errs, m)
		}
		c.mu.Unlock()
	}
	if c.opts.Events != nil {
		c.opts.Events(m)
	}
}

// answerSubscriber answers a server offer on the subscriber connection. It
// runs on the read loop, so offers are handled one at a time, in order.
func (c *Client) answerSubscriber(sdp string) error {
	c.mu.Lock()
	if c.sub == nil {
		pc, err := c.newPC(signaling.TargetSubscriber)
		if err != nil {
			c.mu.Unlock()
			return err
		}
		c.sub = pc
	}
	pc := c.sub
	c.mu.Unlock()
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return err
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return err
	}
	if err := pc.SetLocalDescription(ans); err != nil {
		return err
	}
	if err := c.Send(signaling.Message{Type: signaling.TypeAnswer, Target: signaling.TargetSubscriber, SDP: ans.SDP}); err != nil {
		return err
	}
	c.sdpDelivered(signaling.TargetSubscriber)
	return nil
}

// Done is closed when the connection to the server has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Leave says goodbye to the server and closes everything.
func (c *Client) Leave() error {
	_ = c.Send(signaling.Message{Type: signaling.TypeLeave})
	return c.Close()
}

// Close closes the connection and both PeerConnections; every goroutine the
// client started has ended on return.
func (c *Client) Close() error {
	err := c.conn.Close()
	c.wg.Wait()
	c.mu.Lock()
	pcs := []*webrtc.PeerConnection{c.pub, c.sub}
	c.mu.Unlock()
	for _, pc := range pcs {
		if pc != nil {
			err = errors.Join(err, pc.Close())
		}
	}
	return err
}
