package sfu

import (
	"strings"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/fec"
)

// Video FEC toward a subscriber: ULPFEC (RFC 5109) inside RED (RFC 2198),
// the form browsers decode. While protection is on, media packets go out
// RED-wrapped (a browser only feeds RED packets to its FEC decoder) and,
// after each frame, the FEC packets of the groups that closed, numbered in
// the media's sequence space. Protection follows the subscriber's loss.

// Video codecs for FEC.
const (
	MimeVideoRED = "video/red"
	MimeULPFEC   = "video/ulpfec"
)

// fecRTT is the round-trip time the protection policy assumes until the
// subscriber's receiver reports give one.
const fecRTT = 100 * time.Millisecond

// protectionRTT is the round-trip time FEC is sized for.
func (d *DownTrack) protectionRTT() time.Duration {
	if rtt := d.RTT(); rtt > 0 {
		return rtt
	}
	return fecRTT
}

// fecState is a down track's FEC state, owned by its writer goroutine.
type fecState struct {
	redPT, fecPT uint8
	twccID       uint8 // transport-wide CC extension ID (0: not negotiated)
	enc          *fec.Encoder
	prot         fec.Protection
	wrap         []byte   // RED-wrapped payload being written
	pending      [][]byte // FEC payloads waiting for the end of the frame
	npending     int
	ext          [1]rtp.Extension
	twccZero     [2]byte
}

// setupFEC enables FEC when the subscriber negotiated video RED and ULPFEC.
func (d *DownTrack) setupFEC(ctx webrtc.TrackLocalContext) {
	var redPT, fecPT int = -1, -1
	for _, c := range ctx.CodecParameters() {
		switch {
		case strings.EqualFold(c.MimeType, MimeVideoRED):
			redPT = int(c.PayloadType)
		case strings.EqualFold(c.MimeType, MimeULPFEC):
			fecPT = int(c.PayloadType)
		}
	}
	if redPT < 0 || fecPT < 0 {
		d.fec.Store(nil)
		return
	}
	exts := map[string]int{}
	var twccID uint8
	for _, h := range ctx.HeaderExtensions() {
		exts[h.URI] = h.ID
		if h.URI == fec.URITransportCC {
			twccID = uint8(h.ID)
		}
	}
	enc, err := fec.NewEncoder(fec.EncoderConfig{Mutable: fec.LibwebrtcMutable(exts)})
	if err != nil {
		d.log.Warn("video FEC unavailable", "err", err)
		return
	}
	d.fec.Store(&fecState{redPT: uint8(redPT), fecPT: uint8(fecPT), twccID: twccID, enc: enc,
		wrap: make([]byte, 0, maxPacketSize+1)})
}

// protection updates the FEC level from the subscriber's loss, at frame
// starts only (a group never mixes levels mid-frame).
func (f *fecState) protection(loss float64, rtt time.Duration) {
	p := fec.ProtectionFor(loss, rtt)
	if p == f.prot {
		return
	}
	if p.Off() {
		f.enc.Reset() // an open group will never be completed
		f.npending = 0
	} else if err := f.enc.SetProtection(p.FEC, p.Group); err != nil {
		return
	}
	f.prot = p
}

// writeVideo writes one forwarded video packet, with FEC when it is on.
func (d *DownTrack) writeVideo(hdr CachedPacket, seq uint16, ts uint32, payload []byte) bool {
	f := d.fec.Load()
	if f == nil {
		return d.write(hdr, seq, ts, payload)
	}
	if hdr.FrameStart {
		f.protection(d.lossRate(), d.protectionRTT())
	}
	if f.prot.Off() {
		return d.write(hdr, seq, ts, payload)
	}
	b := d.binding.Load()
	if b == nil {
		return false
	}
	d.hdr = rtp.Header{Version: 2, Marker: hdr.Marker, PayloadType: b.pt, SequenceNumber: seq, Timestamp: ts,
		SSRC: b.ssrc, Padding: hdr.PaddingSize > 0, PaddingSize: hdr.PaddingSize}
	f.addTWCC(&d.hdr)
	// the FEC covers the packet as the receiver rebuilds it from the RED
	// one: the media payload type and payload, the header as sent
	fecs, err := f.enc.AddHeader(&d.hdr, payload)
	if err == nil {
		f.keep(fecs)
	}
	f.wrap = fec.WrapRED(f.wrap[:0], b.pt, payload)
	d.hdr.PayloadType = f.redPT
	_, err = b.writer.WriteRTP(&d.hdr, f.wrap)
	if hdr.Marker {
		d.flushFEC(b, f, ts)
	}
	return err == nil
}

// addTWCC gives the header the transport-wide CC extension the interceptor
// fills in later, so that the FEC input has the header as sent (the
// receiver zeroes the value before decoding).
func (f *fecState) addTWCC(h *rtp.Header) {
	if f.twccID == 0 {
		return
	}
	h.Extensions = f.ext[:0] // appended to without allocating
	_ = h.SetExtension(f.twccID, f.twccZero[:])
}

// keep copies FEC payloads until the frame ends: a packet of the SFU's own
// inside a frame's sequence range would make the frame unassemblable.
func (f *fecState) keep(fecs [][]byte) {
	for _, p := range fecs {
		if f.npending == len(f.pending) {
			f.pending = append(f.pending, nil)
		}
		f.pending[f.npending] = append(f.pending[f.npending][:0], p...)
		f.npending++
	}
}

// flushFEC sends the pending FEC packets after a frame's last packet.
func (d *DownTrack) flushFEC(b *binding, f *fecState, ts uint32) {
	for i := 0; i < f.npending; i++ {
		seq, _ := d.rw.Insert()
		f.wrap = fec.WrapRED(f.wrap[:0], f.fecPT, f.pending[i])
		d.hdr = rtp.Header{Version: 2, PayloadType: f.redPT, SequenceNumber: seq, Timestamp: ts, SSRC: b.ssrc}
		f.addTWCC(&d.hdr)
		if _, err := b.writer.WriteRTP(&d.hdr, f.wrap); err == nil {
			d.fecSent.Add(1)
		}
	}
	f.npending = 0
}

// fecOverhead is the share of a video layer's rate FEC adds for this
// subscriber now (0 when off).
func (d *DownTrack) fecOverhead() float64 {
	if d.fec.Load() == nil {
		return 0
	}
	p := fec.ProtectionFor(d.lossRate(), d.protectionRTT())
	if p.Off() {
		return 0
	}
	return p.Overhead()
}
