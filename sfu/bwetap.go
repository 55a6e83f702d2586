package sfu

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"

	"github.com/chorus-sfu/chorus/bwe"
)

// bandwidth is one subscriber connection's estimator behind a lock: packets
// are reported by every down track's writer, feedback by the RTCP reader,
// and the control loop reads the estimate.
type bandwidth struct {
	mu  sync.Mutex
	est *bwe.Estimator // allocated on first use: publish-only participants never need one
	// prober pads for the running probe (set by the control loop): the
	// feedback that ends a probe early stops its padding at once
	prober *DownTrack
	// dropped, if set, is called (without the lock) when feedback lowered
	// the estimate: the allocation runs at once, not at the next tick
	dropped func()
}

func newBandwidth() *bandwidth { return &bandwidth{} }

// estimator returns the estimator, creating it; b.mu is held.
func (b *bandwidth) estimator() *bwe.Estimator {
	if b.est == nil {
		b.est = bwe.NewEstimator(bwe.Config{})
	}
	return b.est
}

func (b *bandwidth) sent(seq uint16, size int, at time.Time) {
	b.mu.Lock()
	b.estimator().OnPacketSent(seq, size, at)
	b.mu.Unlock()
}

func (b *bandwidth) feedback(fb *rtcp.TransportLayerCC, at time.Time) {
	b.mu.Lock()
	e := b.estimator()
	before := e.Estimate()
	e.OnFeedback(fb, at)
	lowered := e.Estimate() < before
	var stop *DownTrack
	if b.prober != nil && e.ProbeRate(at) == 0 {
		stop, b.prober = b.prober, nil
	}
	dropped := b.dropped
	b.mu.Unlock()
	if stop != nil {
		stop.Probe(0, 0) // does not block
	}
	if lowered && dropped != nil {
		dropped()
	}
}

// with runs f on the estimator with the lock held.
func (b *bandwidth) with(f func(*bwe.Estimator)) {
	b.mu.Lock()
	f(b.estimator())
	b.mu.Unlock()
}

// tapFactory builds the interceptor that feeds a subscriber connection's
// estimator: it sees each outgoing packet after the transport-wide sequence
// number was added, and each incoming RTCP packet. pion builds interceptors
// inside NewPeerConnection without saying for whom, so the factory hands
// the next PeerConnection's tap the estimator set by forNext.
type tapFactory struct {
	mu      sync.Mutex // held from forNext until the PeerConnection is built
	next    *bandwidth
	nextRTX *rtxRoutes
}

// forNext makes the next built tap feed b; call done once the
// PeerConnection exists.
func (f *tapFactory) forNext(b *bandwidth, rtx *rtxRoutes) (done func()) {
	f.mu.Lock()
	f.next, f.nextRTX = b, rtx
	return func() {
		f.next, f.nextRTX = nil, nil
		f.mu.Unlock()
	}
}

func (f *tapFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &tap{bw: f.next, rtx: f.nextRTX}, nil // f.mu is held by the PeerConnection's creator
}

type tap struct {
	interceptor.NoOp
	bw  *bandwidth // nil: this connection is not estimated
	rtx *rtxRoutes // nil: no publisher retransmissions to route
}

func (t *tap) BindRemoteStream(info *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	if t.rtx == nil {
		return r
	}
	return t.rtx.bindRepair(info, r)
}

func (t *tap) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	if t.bw == nil {
		return w
	}
	var id uint8
	for _, e := range info.RTPHeaderExtensions {
		if e.URI == sdp.TransportCCURI {
			id = uint8(e.ID)
		}
	}
	if id == 0 {
		return w
	}
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if ext := h.GetExtension(id); len(ext) >= 2 {
			t.bw.sent(binary.BigEndian.Uint16(ext), h.MarshalSize()+len(payload)+int(h.PaddingSize), time.Now())
		}
		return w.Write(h, payload, a)
	})
}

func (t *tap) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	if t.bw == nil {
		return r
	}
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, attr, err := r.Read(b, a)
		if err != nil {
			return n, attr, err
		}
		pkts, perr := rtcp.Unmarshal(b[:n])
		if perr == nil {
			now := time.Now()
			for _, p := range pkts {
				if fb, ok := p.(*rtcp.TransportLayerCC); ok {
					t.bw.feedback(fb, now)
				}
			}
		}
		return n, attr, err
	})
}
