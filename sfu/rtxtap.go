package sfu

import (
	"encoding/binary"
	"slices"
	"strings"
	"sync"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

// Publisher retransmissions without delay. pion hands a track's RTX packets
// (RFC 4588) to the track's reader only between two reads of the media
// stream: one that arrives while the reader waits for media waits with it,
// up to a frame interval (33 ms at 30 fps) on every repair round. The
// publisher connection's tap therefore takes each RTX packet of a stream
// whose up track is known (rtxRoutes) as it arrives, turns it back into
// the original packet and hands it to the up track at once; pion never
// sees it (an empty read, which pion skips). RTX streams not routed (yet)
// take pion's way.

// rtxRoutes maps one publisher connection's RTX SSRCs to the up tracks
// they repair.
type rtxRoutes struct {
	mu     sync.RWMutex
	routes map[uint32]*UpTrack
}

func newRTXRoutes() *rtxRoutes { return &rtxRoutes{routes: map[uint32]*UpTrack{}} }

func (r *rtxRoutes) add(ssrc uint32, t *UpTrack) {
	r.mu.Lock()
	r.routes[ssrc] = t
	r.mu.Unlock()
}

func (r *rtxRoutes) remove(ssrc uint32, t *UpTrack) {
	r.mu.Lock()
	if r.routes[ssrc] == t {
		delete(r.routes, ssrc)
	}
	r.mu.Unlock()
}

func (r *rtxRoutes) get(ssrc uint32) *UpTrack {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.routes[ssrc]
}

// bindRepair wraps the reader of a remote RTX stream.
func (r *rtxRoutes) bindRepair(info *interceptor.StreamInfo, rd interceptor.RTPReader) interceptor.RTPReader {
	if !strings.EqualFold(info.MimeType, webrtc.MimeTypeRTX) {
		return rd
	}
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, attr, err := rd.Read(b, a)
		if err != nil || n < 12 {
			return n, attr, err
		}
		t := r.get(binary.BigEndian.Uint32(b[8:12]))
		if t == nil || !t.handleRTX(b[:n]) {
			return n, attr, err
		}
		return 0, attr, nil // consumed: pion skips an empty read
	})
}

// routeRTX routes the RTX stream of remote to t once pion knows its SSRC
// (signalled, or learned from the first RTX packet of a simulcast layer);
// the returned source checks on every read until then, and the returned
// func removes the route. Nothing is routed (or checked) when the
// receiver negotiated no RTX.
func (r *rtxRoutes) routeRTX(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver, src RTPSource, t *UpTrack) (RTPSource, func()) {
	if r == nil || t.Info().Kind != webrtc.RTPCodecTypeVideo || !slices.ContainsFunc(recv.GetParameters().Codecs,
		func(c webrtc.RTPCodecParameters) bool { return strings.EqualFold(c.MimeType, webrtc.MimeTypeRTX) }) {
		return src, func() {}
	}
	w := &rtxWatch{src: src, remote: remote, routes: r, up: t}
	w.check()
	return w, func() {
		if w.ssrc != 0 {
			r.remove(w.ssrc, t)
		}
	}
}

// rtxWatch is a video up track's source until its RTX stream is routed.
type rtxWatch struct {
	src    RTPSource
	remote *webrtc.TrackRemote
	routes *rtxRoutes
	up     *UpTrack
	ssrc   uint32 // routed RTX SSRC, 0 until then (the reader's)
}

func (w *rtxWatch) check() {
	if s := uint32(w.remote.RtxSSRC()); s != 0 {
		w.ssrc = s
		w.routes.add(s, w.up)
	}
}

func (w *rtxWatch) Read(b []byte) (int, interceptor.Attributes, error) {
	if w.ssrc == 0 {
		w.check()
	}
	return w.src.Read(b)
}

// handleRTX takes one RTX packet of this stream, rewritten in place into
// the packet it repairs: the original sequence number (the payload's first
// two bytes) in the header, the stream's SSRC and its current payload type
// (what pion does too). It reports whether the packet was taken; padding
// (a bandwidth probe) is taken and dropped.
func (t *UpTrack) handleRTX(b []byte) bool {
	ssrc := t.ssrc.Load()
	if ssrc == 0 {
		return false // no media yet: let pion keep it for the reader
	}
	r, err := parseRTP(b)
	if err != nil {
		return false
	}
	if len(r.payload) < 2 {
		return true // padding only
	}
	hl := len(b) - int(r.paddingSize) - len(r.payload)
	osn := binary.BigEndian.Uint16(b[hl:])
	copy(b[hl:], b[hl+2:])
	b = b[:len(b)-2]
	binary.BigEndian.PutUint16(b[2:], osn)
	binary.BigEndian.PutUint32(b[8:], ssrc)
	b[1] = b[1]&0x80 | uint8(t.lastPT.Load())&0x7F
	t.repairs.Add(1)
	t.readMu.Lock()
	t.handlePacket(b)
	t.readMu.Unlock()
	return true
}
