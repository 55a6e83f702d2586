package sfu

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/bwe"
)

type subscription struct {
	down      *DownTrack
	sender    *webrtc.RTPSender
	maxLayer  int  // the subscriber's limit
	maxHeight int  // the subscriber's height limit, 0: none
	paused    bool // the subscriber paused the track
	grant     bwe.Grant
	hasGrant  bool // grant is the bandwidth allocator's last word
	// the wish the grant was made for: a wish raised since then is held
	// at the grant until the allocator has priced it
	grantLimit  int
	grantPaused bool
}

// Participant is a room member with up to two PeerConnections: a publisher
// connection, on which the client offers its tracks, and a subscriber
// connection, on which the server offers everyone else's tracks (or, for
// WHEP, answers the client's offer).
type Participant struct {
	id            string
	name          string
	sfu           *SFU
	room          *Room
	listener      Listener
	log           *slog.Logger
	canPublish    bool
	canSubscribe  bool
	autoSubscribe bool
	wantsData     bool // data channels on the subscriber connection
	onJoined      func(self ParticipantInfo, others []ParticipantInfo)
	joinSeq       int // guarded by room.mu

	expected atomic.Int32 // media sections the publisher negotiated
	bw       *bandwidth   // the subscriber connection's estimator
	rtx      *rtxRoutes   // the publisher connection's RTX streams (rtxtap.go)
	// rtxBudget bounds the retransmissions sent on the subscriber connection
	rtxBudget RetransmitBudget

	mu        sync.Mutex
	closed    bool
	pub, sub  *webrtc.PeerConnection
	published map[string]*PublishedTrack // by track ID
	byRecv    map[*webrtc.RTPReceiver]*PublishedTrack
	muted     map[string]bool   // by publisher track ID, for tracks not yet arrived
	sources   map[string]string // by publisher track ID: what the track shows
	subs      map[string]*subscription
	data      *dataPeer // nil: no data channels
	wg        sync.WaitGroup
	ctl       sync.WaitGroup // the control loop alone

	// layer changes, posted from media goroutines, told by the control loop
	layerMu      sync.Mutex
	layerPending map[string]layerNote
	layerKick    chan struct{}
	allocKick    chan struct{} // a wish rose: allocate now, not at the next tick
	done         chan struct{} // closed by Close: stops the control loop

	pubRTT atomic.Int64 // nanoseconds: see PublisherRTT
	// pubICEUp: the publisher connection's ICE has connected. pion's ICE
	// transport sets its gatherer unlocked when it starts, so its stats
	// are read only after this.
	pubICEUp atomic.Bool
}

func newParticipant(s *SFU, r *Room, o JoinOptions) *Participant {
	id := newID("PA")
	p := &Participant{
		id: id, name: o.Name, sfu: s, room: r, listener: o.Listener,
		log:        s.log.With("room", r.name, "participant", id, "name", o.Name),
		canPublish: o.Publish, canSubscribe: o.Subscribe, autoSubscribe: o.AutoSubscribe && o.Subscribe,
		wantsData: o.Data && o.Subscribe,
		onJoined:  o.OnJoined,
		published: map[string]*PublishedTrack{}, byRecv: map[*webrtc.RTPReceiver]*PublishedTrack{}, muted: map[string]bool{}, sources: map[string]string{}, subs: map[string]*subscription{},
		done:      make(chan struct{}),
		bw:        newBandwidth(),
		rtx:       newRTXRoutes(),
		layerKick: make(chan struct{}, 1),
		allocKick: make(chan struct{}, 1),
	}
	p.bw.dropped = p.kickAllocation
	return p
}

// start runs the participant's control loop once it is in the room.
func (p *Participant) start() {
	p.wg.Add(1)
	p.ctl.Add(1)
	go func() {
		defer p.ctl.Done()
		p.controlLoop()
	}()
}

// ID is the participant's server-assigned ID.
func (p *Participant) ID() string { return p.id }

// Name is the participant's display name.
func (p *Participant) Name() string { return p.name }

// Room is the participant's room.
func (p *Participant) Room() *Room { return p.room }

func (p *Participant) info(tracks []TrackInfo) ParticipantInfo {
	return ParticipantInfo{ID: p.id, Name: p.name, Tracks: tracks}
}

// newPC creates one of the participant's PeerConnections. Called with p.mu held.
func (p *Participant) newPC(target Target) (*webrtc.PeerConnection, error) {
	var est *bandwidth
	var rtx *rtxRoutes
	if target == TargetSubscriber {
		est = p.bw
	} else {
		rtx = p.rtx
	}
	built := p.sfu.taps.forNext(est, rtx)
	pc, err := p.sfu.api.NewPeerConnection(webrtc.Configuration{
		BundlePolicy:  webrtc.BundlePolicyMaxBundle,
		RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire,
	})
	built()
	if err != nil {
		return nil, fmt.Errorf("new peer connection: %w", err)
	}
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		p.log.Debug("connection state", "pc", target, "state", s.String())
		if s == webrtc.PeerConnectionStateFailed {
			p.listener.ConnectionFailed(target)
		}
	})
	// Data channels the client opens itself are not ours to carry: closed,
	// so that they hold no goroutine or buffer.
	pc.OnDataChannel(func(dc *webrtc.DataChannel) { _ = dc.Close() })
	if target == TargetPublisher {
		pc.OnTrack(p.onTrack)
		pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
			if s == webrtc.ICEConnectionStateConnected || s == webrtc.ICEConnectionStateCompleted {
				p.pubICEUp.Store(true)
			}
		})
	} else {
		pc.OnNegotiationNeeded(func() {
			if p.autoSubscribe || p.wantsData {
				p.listener.SubscriberNegotiationNeeded()
			}
		})
	}
	return pc, nil
}

// startLayer is a new video subscription's layer while bandwidth is
// allocated and the subscriber's link is not measured yet.
const startLayer = 1

// HandlePublisherOffer applies the client's offer on the publisher
// connection (creating it on first use) and returns the complete answer,
// candidates included.
func (p *Participant) HandlePublisherOffer(offer webrtc.SessionDescription) (webrtc.SessionDescription, error) {
	if !p.canPublish {
		return webrtc.SessionDescription{}, ErrNoPublisher
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return webrtc.SessionDescription{}, ErrClosed
	}
	if p.pub == nil {
		pc, err := p.newPC(TargetPublisher)
		if err != nil {
			p.mu.Unlock()
			return webrtc.SessionDescription{}, err
		}
		p.pub = pc
	}
	pc := p.pub
	p.mu.Unlock()

	ans, err := answer(pc, offer, p.sfu.publisherCodecs)
	if err != nil {
		return ans, err
	}
	n := 0
	for _, tr := range pc.GetTransceivers() {
		if d := tr.Direction(); d == webrtc.RTPTransceiverDirectionRecvonly || d == webrtc.RTPTransceiverDirectionSendrecv {
			n++
		}
	}
	p.expected.Store(int32(n))
	return ans, nil
}

// answer applies a remote offer and returns the local answer once ICE
// gathering has completed (the single UDP port makes that immediate).
// prepare, if set, may adjust the transceivers before the answer is made.
func answer(pc *webrtc.PeerConnection, offer webrtc.SessionDescription, prepare func(*webrtc.PeerConnection)) (webrtc.SessionDescription, error) {
	if offer.Type != webrtc.SDPTypeOffer || offer.SDP == "" {
		return webrtc.SessionDescription{}, fmt.Errorf("%w: expected a non-empty offer", ErrBadSDP)
	}
	if err := pc.SetRemoteDescription(offer); err != nil {
		return webrtc.SessionDescription{}, fmt.Errorf("%w: %w", ErrBadSDP, err)
	}
	if prepare != nil {
		prepare(pc)
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return webrtc.SessionDescription{}, fmt.Errorf("%w: create answer: %w", ErrBadSDP, err)
	}
	return setLocal(pc, ans)
}

func setLocal(pc *webrtc.PeerConnection, d webrtc.SessionDescription) (webrtc.SessionDescription, error) {
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(d); err != nil {
		return webrtc.SessionDescription{}, fmt.Errorf("set local description: %w", err)
	}
	<-gathered
	return *pc.LocalDescription(), nil
}

func (p *Participant) subscriberPC() (*webrtc.PeerConnection, error) {
	if !p.canSubscribe {
		return nil, ErrNoSubscriber
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	if p.sub == nil {
		pc, err := p.newPC(TargetSubscriber)
		if err != nil {
			return nil, err
		}
		p.sub = pc
	}
	return p.sub, nil
}

// CreateSubscriberOffer returns a server offer for the subscriber
// connection describing the current subscriptions.
func (p *Participant) CreateSubscriberOffer() (webrtc.SessionDescription, error) {
	pc, err := p.subscriberPC()
	if err != nil {
		return webrtc.SessionDescription{}, err
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return webrtc.SessionDescription{}, fmt.Errorf("create offer: %w", err)
	}
	return setLocal(pc, offer)
}

// HandleSubscriberAnswer applies the client's answer to a server offer. An
// error leaves the subscriber connection unusable (see ErrBadSDP).
func (p *Participant) HandleSubscriberAnswer(ans webrtc.SessionDescription) error {
	pc, err := p.subscriberPC()
	if err != nil {
		return err
	}
	if ans.Type != webrtc.SDPTypeAnswer || ans.SDP == "" {
		return fmt.Errorf("%w: expected a non-empty answer", ErrBadSDP)
	}
	if err := pc.SetRemoteDescription(ans); err != nil {
		// pion cannot roll a local offer back: the connection stays in
		// have-local-offer and can never be renegotiated. Callers end the
		// session.
		return fmt.Errorf("%w: %w", ErrBadSDP, err)
	}
	return nil
}

// HandleSubscriberOffer answers a client-initiated subscription (WHEP): the
// given tracks are attached to the offer's receive-only sections.
func (p *Participant) HandleSubscriberOffer(offer webrtc.SessionDescription, tracks []*PublishedTrack) (webrtc.SessionDescription, error) {
	pc, err := p.subscriberPC()
	if err != nil {
		return webrtc.SessionDescription{}, err
	}
	if offer.Type != webrtc.SDPTypeOffer || offer.SDP == "" {
		return webrtc.SessionDescription{}, fmt.Errorf("%w: expected a non-empty offer", ErrBadSDP)
	}
	if err := pc.SetRemoteDescription(offer); err != nil {
		return webrtc.SessionDescription{}, fmt.Errorf("%w: %w", ErrBadSDP, err)
	}
	attached := 0
	p.room.mu.Lock()
	for _, t := range tracks {
		if p.room.tracks[t.info.ID] == t && p.subscribe(t) {
			attached++
		}
	}
	p.room.mu.Unlock()
	if attached == 0 {
		return webrtc.SessionDescription{}, ErrNotPublishing
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return webrtc.SessionDescription{}, fmt.Errorf("%w: create answer: %w", ErrBadSDP, err)
	}
	return setLocal(pc, ans)
}

// AddICECandidate adds a trickled remote candidate to one connection.
func (p *Participant) AddICECandidate(target Target, c webrtc.ICECandidateInit) error {
	p.mu.Lock()
	pc := p.pub
	if target == TargetSubscriber {
		pc = p.sub
	}
	p.mu.Unlock()
	if pc == nil {
		return fmt.Errorf("%w: no %s connection", ErrBadSDP, target)
	}
	if err := pc.AddICECandidate(c); err != nil {
		return fmt.Errorf("%w: candidate: %w", ErrBadSDP, err)
	}
	return nil
}

// onTrack runs in pion's goroutine for each incoming stream (each simulcast
// layer is one) and becomes that stream's reader until the stream ends.
func (p *Participant) onTrack(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	pc := p.pub
	red := publisherRED(remote, recv, p.sfu.cfg.PublisherFEC)
	codec := red.codec
	pt, existing := p.byRecv[recv]
	if !existing {
		info := TrackInfo{
			ID: newID("TR"), ParticipantID: p.id, Kind: remote.Kind(),
			MimeType: codec.MimeType, PublisherTrackID: remote.ID(),
			Source: p.sources[remote.ID()],
		}
		pt = newPublishedTrack(info, codec)
		pt.muted.Store(p.muted[remote.ID()])
		p.byRecv[recv] = pt
		p.published[info.ID] = pt
	}
	layer := pt.freeLayer(remote.RID())
	if layer < 0 {
		p.mu.Unlock()
		p.log.Warn("too many simulcast layers", "rid", remote.RID())
		return
	}
	up := NewUpTrack(UpTrackOptions{
		Info: pt.info, Codec: codec, KeyframeInterval: p.sfu.cfg.KeyframeInterval, Logger: p.log,
		REDPayloadType: red.redPT, FECPayloadType: red.fecPT, FECMutable: red.mutable,
		RequestKeyframe: func(ssrc uint32) error {
			return pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
		},
		RTT: p.PublisherRTT,
		SendNACK: func(ssrc uint32, seqs []uint16) error {
			return pc.WriteRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{MediaSSRC: ssrc, Nacks: rtcp.NackPairsFromSequenceNumbers(seqs)}})
		},
	})
	pt.addLayer(layer, up)
	p.wg.Add(2)
	p.mu.Unlock()

	rid := remote.RID()
	go func() { // read RTCP: pion's interceptors see it, the up track keeps sender reports
		defer p.wg.Done()
		for {
			var pkts []rtcp.Packet
			var err error
			if rid != "" {
				pkts, _, err = recv.ReadSimulcastRTCP(rid)
			} else {
				pkts, _, err = recv.ReadRTCP()
			}
			if err != nil {
				return
			}
			for _, pkt := range pkts {
				if sr, ok := pkt.(*rtcp.SenderReport); ok {
					up.noteSenderReport(sr)
				}
			}
		}
	}()
	p.log.Info("stream published", "track", pt.info.ID, "kind", pt.info.Kind.String(),
		"codec", pt.info.MimeType, "rid", rid, "layer", layer)
	if !existing {
		p.room.publish(pt)
	}
	defer p.wg.Done()
	src, unroute := p.rtx.routeRTX(remote, recv, red.source, up)
	up.ReadLoop(src)
	unroute()
	if pt.removeLayer(up) {
		return
	}
	p.room.unpublish(pt)
	p.mu.Lock()
	delete(p.published, pt.info.ID)
	delete(p.byRecv, recv)
	p.mu.Unlock()
}

// subscribe attaches a down track of t and reports whether it did. Called
// with the room locked.
func (p *Participant) subscribe(t *PublishedTrack) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || !p.canSubscribe {
		return false
	}
	if _, ok := p.subs[t.info.ID]; ok {
		return true
	}
	if p.sub == nil {
		pc, err := p.newPC(TargetSubscriber)
		if err != nil {
			p.log.Warn("subscribe failed", "err", err)
			return false
		}
		p.sub = pc
	}
	trackID := t.info.ID
	opts := DownTrackOptions{Logger: p.log, Retransmit: &p.rtxBudget, PreferFlexFEC: p.sfu.cfg.PreferFlexFEC,
		OnLayer: func(layer int, reason string) { p.postLayer(trackID, layer, reason) }}
	if !p.sfu.cfg.NoBandwidthAllocation {
		// start in the middle until the link is measured: the top layer
		// could flood a slow link before the first estimate
		opts.Layer = startLayer
	}
	d := NewDownTrack(t, opts)
	sender, err := p.addDownTrack(d)
	if err != nil {
		d.Close()
		p.log.Warn("subscribe failed", "track", t.info.ID, "err", err)
		return false
	}
	p.subs[t.info.ID] = &subscription{down: d, sender: sender, maxLayer: MaxLayers - 1}
	t.attach(d)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		d.RTCPLoop(sender)
	}()
	return true
}

// addDownTrack adds d to the subscriber connection, reusing a matching
// receive-only section of a client offer (WHEP) when there is one, and
// restricting the section's codecs to the publisher's codec.
func (p *Participant) addDownTrack(d *DownTrack) (*webrtc.RTPSender, error) {
	var tr *webrtc.RTPTransceiver
	if p.autoSubscribe {
		t, err := p.sub.AddTransceiverFromTrack(d,
			webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return nil, err
		}
		tr = t
	} else {
		sender, err := p.sub.AddTrack(d)
		if err != nil {
			return nil, err
		}
		for _, t := range p.sub.GetTransceivers() {
			if t.Sender() == sender {
				tr = t
			}
		}
	}
	if tr == nil {
		return nil, fmt.Errorf("sfu: no transceiver for %s", d.id)
	}
	if err := tr.SetCodecPreferences(p.sfu.codecPreferences(d.src.codec)); err != nil {
		p.log.Debug("codec preferences", "err", err)
	}
	return tr.Sender(), nil
}

// unsubscribe detaches the down track of t. Called with the room locked.
func (p *Participant) unsubscribe(t *PublishedTrack) {
	p.mu.Lock()
	s, ok := p.subs[t.info.ID]
	delete(p.subs, t.info.ID)
	pc, closed := p.sub, p.closed
	p.mu.Unlock()
	if !ok {
		return
	}
	t.detach(s.down)
	if !closed && pc != nil {
		if err := pc.RemoveTrack(s.sender); err != nil {
			p.log.Debug("remove track", "err", err)
		}
	}
	s.down.Close()
}

// SetTrackSources records what the participant's tracks show (by its own
// track IDs), replacing what the previous offer said. Unknown sources are
// ignored; the decoder bounds the map's size.
func (p *Participant) SetTrackSources(sources map[string]string) {
	next := make(map[string]string, len(sources))
	for id, src := range sources {
		switch src {
		case SourceCamera, SourceScreen, SourceMicrophone:
			next[id] = src
		}
	}
	p.mu.Lock()
	p.sources = next // each offer describes every track it sends
	p.mu.Unlock()
}

// SetTrackMuted records that the participant muted or unmuted one of its own
// tracks (by server track ID or by its own track ID) and tells the room.
func (p *Participant) SetTrackMuted(trackID string, muted bool) error {
	p.mu.Lock()
	var found *PublishedTrack
	for _, t := range p.published {
		if t.info.ID == trackID || t.info.PublisherTrackID == trackID {
			found = t
			break
		}
	}
	if found == nil {
		p.muted[trackID] = muted // applied when the track arrives
	}
	p.mu.Unlock()
	if found == nil {
		return nil
	}
	if found.blocked.Load() {
		return nil // muted by an operator: the publisher cannot unmute it
	}
	if found.muted.Swap(muted) != muted {
		p.room.trackMuted(found)
	}
	return nil
}

// Subscriptions returns the participant's down tracks.
func (p *Participant) Subscriptions() []*DownTrack {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*DownTrack, 0, len(p.subs))
	for _, s := range p.subs {
		out = append(out, s.down)
	}
	return out
}

// Published returns the participant's published tracks.
func (p *Participant) Published() []*PublishedTrack {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*PublishedTrack, 0, len(p.published))
	for _, t := range p.published {
		out = append(out, t)
	}
	return out
}

// WaitPublished waits (until ctx ends) for the tracks the participant
// negotiated to arrive and returns them.
func (p *Participant) WaitPublished(ctx context.Context) []*PublishedTrack {
	return p.room.WaitTracks(ctx, p)
}

// Close leaves the room: the participant's tracks are unpublished, its
// connections closed, and every goroutine it started has ended on return.
func (p *Participant) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	p.room.removeParticipant(p)

	p.mu.Lock()
	pub, sub := p.pub, p.sub
	subs := p.subs
	p.subs = map[string]*subscription{}
	p.mu.Unlock()
	close(p.done)
	// The control loop reads the connections' stats: it ends before they
	// close (pion's GetStats races with Close).
	p.ctl.Wait()

	for _, s := range subs {
		s.down.src.detach(s.down)
	}
	for _, pc := range []*webrtc.PeerConnection{pub, sub} {
		if pc != nil {
			if err := pc.Close(); err != nil {
				p.log.Debug("close peer connection", "err", err)
			}
		}
	}
	for _, s := range subs {
		s.down.Close()
	}
	p.wg.Wait()
}

// closeUnjoined closes the connections of a participant that never made it
// into its room.
func (p *Participant) closeUnjoined() {
	p.mu.Lock()
	p.closed = true
	pcs := []*webrtc.PeerConnection{p.pub, p.sub}
	p.mu.Unlock()
	for _, pc := range pcs {
		if pc != nil {
			_ = pc.Close()
		}
	}
}

// PublisherRTT is the round trip to the participant's publisher connection
// (from ICE connectivity checks; 0 until measured).
func (p *Participant) PublisherRTT() time.Duration { return time.Duration(p.pubRTT.Load()) }

// measurePublisherRTT refreshes PublisherRTT; called by the control loop.
func (p *Participant) measurePublisherRTT() {
	p.mu.Lock()
	pc := p.pub
	p.mu.Unlock()
	if pc == nil || !p.pubICEUp.Load() {
		return
	}
	// Only the selected pair is read: PeerConnection.GetStats races with
	// Close inside pion (it reads the stats getter Close clears unlocked).
	cp, ok := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePairStats()
	if ok && cp.CurrentRoundTripTime > 0 {
		p.pubRTT.Store(int64(cp.CurrentRoundTripTime * float64(time.Second)))
	}
}
