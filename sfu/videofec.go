package sfu

import (
	"strings"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/fec"
)

// Video FEC toward a subscriber, in one of the two forms browsers decode:
//   - ULPFEC (RFC 5109) inside RED (RFC 2198), what Chrome negotiates by
//     default. While protection is on, media packets go out RED-wrapped (a
//     browser only feeds RED packets to its FEC decoder) and, after each
//     frame, the FEC packets of the groups that closed, numbered in the
//     media's sequence space.
//   - FlexFEC-03 (draft-ietf-payload-flexible-fec-scheme-03, the format
//     libwebrtc decodes for the SDP codec "flexfec-03"; Chromium 156 offers
//     it by default): media packets go out plain and the FEC packets on
//     their own stream (the FEC SSRC pion signals with
//     a=ssrc-group:FEC-FR), with their own sequence numbers. Used when it is
//     the only one negotiated, or with DownTrackOptions.PreferFlexFEC: in
//     Chromium, which negotiates both, ULPFEC decoded as many frames or
//     more (docs/benchmarks.md).
//
// Protection follows the subscriber's loss and round trip either way.

// Video codecs for FEC.
const (
	MimeVideoRED   = "video/red"
	MimeULPFEC     = "video/ulpfec"
	MimeFlexFEC03  = webrtc.MimeTypeFlexFEC03
	flexFECRepairW = "repair-window=10000000" // 10 s, in microseconds, as libwebrtc offers it
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
	// FlexFEC-03 (flexSSRC != 0): fecPT is flexfec-03's, the FEC packets go
	// on flexSSRC numbered by flexSeq, and redPT is unused
	flexSSRC uint32
	flexSeq  uint16
	twccID   uint8 // transport-wide CC extension ID (0: not negotiated)
	enc      *fec.Encoder
	prot     fec.Protection
	wrap     []byte   // RED-wrapped payload being written
	pending  [][]byte // FEC payloads waiting for the end of the frame
	npending int
	ext      [1]rtp.Extension
	twccZero [2]byte
}

// setupFEC enables FEC: FlexFEC-03 when the subscriber negotiated it (and
// pion gave the track a FEC stream) and not ULPFEC, or the down track
// prefers it; else ULPFEC when it negotiated video RED and ULPFEC.
func (d *DownTrack) setupFEC(ctx webrtc.TrackLocalContext) {
	var redPT, fecPT, flexPT int = -1, -1, -1
	for _, c := range ctx.CodecParameters() {
		switch {
		case strings.EqualFold(c.MimeType, MimeVideoRED):
			redPT = int(c.PayloadType)
		case strings.EqualFold(c.MimeType, MimeULPFEC):
			fecPT = int(c.PayloadType)
		case strings.EqualFold(c.MimeType, MimeFlexFEC03):
			flexPT = int(c.PayloadType)
		}
	}
	cfg := fec.EncoderConfig{}
	var flexSSRC uint32
	ulp := redPT >= 0 && fecPT >= 0
	if ssrc := uint32(ctx.SSRCForwardErrorCorrection()); flexPT >= 0 && ssrc != 0 && (d.preferFlex || !ulp) {
		flexSSRC, fecPT = ssrc, flexPT
		cfg.Format, cfg.SSRC = fec.FlexFEC03, uint32(ctx.SSRC())
	} else if !ulp {
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
	cfg.Mutable = fec.LibwebrtcMutable(exts)
	enc, err := fec.NewEncoder(cfg)
	if err != nil {
		d.log.Warn("video FEC unavailable", "err", err)
		return
	}
	d.fec.Store(&fecState{redPT: uint8(max(redPT, 0)), fecPT: uint8(fecPT), flexSSRC: flexSSRC,
		flexSeq: uint16(flexSSRC), twccID: twccID, enc: enc, wrap: make([]byte, 0, maxPacketSize+1)})
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
	// the FEC covers the packet as the receiver sees it (for ULPFEC, as it
	// rebuilds it from the RED one): the media payload type and payload,
	// the header as sent
	fecs, ferr := f.enc.AddHeader(&d.hdr, payload)
	if f.flexSSRC != 0 {
		// FlexFEC: the media as is, then the FEC of any group it closed
		// (FEC packets have a sequence space of their own)
		_, err := b.writer.WriteRTP(&d.hdr, payload)
		if ferr == nil {
			d.writeFlexFEC(b, f, ts, fecs)
		}
		return err == nil
	}
	if ferr == nil {
		f.keep(fecs)
	}
	f.wrap = fec.WrapRED(f.wrap[:0], b.pt, payload)
	d.hdr.PayloadType = f.redPT
	_, err := b.writer.WriteRTP(&d.hdr, f.wrap)
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

// keep copies ULPFEC payloads until the frame ends: a packet of the SFU's
// own inside a frame's sequence range would make the frame unassemblable.
func (f *fecState) keep(fecs [][]byte) {
	for _, p := range fecs {
		if f.npending == len(f.pending) {
			f.pending = append(f.pending, nil)
		}
		f.pending[f.npending] = append(f.pending[f.npending][:0], p...)
		f.npending++
	}
}

// writeFlexFEC sends FlexFEC payloads on the FEC stream.
func (d *DownTrack) writeFlexFEC(b *binding, f *fecState, ts uint32, fecs [][]byte) {
	for _, p := range fecs {
		f.flexSeq++
		d.hdr = rtp.Header{Version: 2, PayloadType: f.fecPT, SequenceNumber: f.flexSeq, Timestamp: ts, SSRC: f.flexSSRC}
		f.addTWCC(&d.hdr) // the interceptor's slot, without allocating
		if _, err := b.writer.WriteRTP(&d.hdr, p); err == nil {
			d.fecSent.Add(1)
		}
	}
}

// flushFEC sends the pending ULPFEC packets after a frame's last packet.
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
