package sfu

import (
	"math"
	"strings"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/red"
)

// MimeRED is audio redundancy (RFC 2198) carrying Opus.
const MimeRED = "audio/red"

// audioMode is how a down track turns the publisher's audio into what the
// subscriber negotiated.
type audioMode uint8

const (
	audioAsIs      audioMode = iota // same codec on both sides
	audioREDEncode                  // Opus in, RED out: redundancy built per subscriber
	audioREDDecode                  // RED in, Opus out: unwrapped, losses recovered
	// RED in, RED out: unwrapped (losses on the publisher's leg recovered),
	// then rebuilt with this subscriber's distance. Browsers send RED with
	// one redundant copy; passed on as is, that copy leaves 16 % of the
	// frames missing on a subscriber leg with 40 % loss.
	audioREDReencode
)

// isAudioPair reports whether n and c are Opus and RED in either order, or
// the same: the SFU converts between the two.
func isAudioPair(n, c string) bool {
	opusOrRED := func(m string) bool { return strings.EqualFold(m, MimeOpus) || strings.EqualFold(m, MimeRED) }
	return opusOrRED(n) && opusOrRED(c)
}

// chooseAudio picks, among the codecs a subscriber negotiated, the one to
// send the publisher's Opus or RED audio as: RED whenever the subscriber
// accepts it (its redundancy adapts to the subscriber's loss), else Opus.
// ok is false when neither was negotiated.
func chooseAudio(src webrtc.RTPCodecParameters, codecs []webrtc.RTPCodecParameters) (c webrtc.RTPCodecParameters, mode audioMode, opusPT uint8, ok bool) {
	var opus, redc *webrtc.RTPCodecParameters
	for i := range codecs {
		switch {
		case strings.EqualFold(codecs[i].MimeType, MimeOpus) && opus == nil:
			opus = &codecs[i]
		case strings.EqualFold(codecs[i].MimeType, MimeRED) && redc == nil:
			redc = &codecs[i]
		}
	}
	srcRED := strings.EqualFold(src.MimeType, MimeRED)
	switch {
	case redc != nil && opus != nil:
		mode = audioREDEncode
		if srcRED {
			mode = audioREDReencode
		}
		return *redc, mode, uint8(opus.PayloadType), true
	case opus != nil && srcRED:
		return *opus, audioREDDecode, uint8(opus.PayloadType), true
	case opus != nil:
		return *opus, audioAsIs, uint8(opus.PayloadType), true
	}
	return webrtc.RTPCodecParameters{}, audioAsIs, 0, false
}

// audioState is a down track's audio conversion state, owned by its
// writer goroutine.
type audioState struct {
	mode   audioMode
	opusPT uint8
	enc    *red.Encoder
	dec    *red.Decoder
	buf    []byte
	hdr    CachedPacket // the packet being unwrapped, for emit
	emit   func(seq uint16, ts uint32, opus []byte)
}

// setupAudio prepares the conversion for mode; called from Bind.
func (d *DownTrack) setupAudio(mode audioMode, opusPT uint8) {
	a := &audioState{mode: mode, opusPT: opusPT}
	switch mode {
	case audioREDEncode:
		a.enc, _ = red.NewEncoder(opusPT & 0x7F)
		a.buf = make([]byte, 0, maxPacketSize)
	case audioREDDecode:
		a.dec = red.NewDecoder()
		a.emit = func(seq uint16, ts uint32, opus []byte) {
			h := a.hdr
			h.SeqNum, h.Timestamp = seq, ts
			d.send(h, opus, &d.packets)
		}
	case audioREDReencode:
		a.dec = red.NewDecoder()
		a.enc, _ = red.NewEncoder(opusPT & 0x7F)
		a.buf = make([]byte, 0, maxPacketSize)
		a.emit = func(seq uint16, ts uint32, opus []byte) {
			h := a.hdr
			h.SeqNum, h.Timestamp = seq, ts
			d.encodeRED(a, h, opus)
		}
	}
	d.audio.Store(a)
}

// sendAudio forwards one audio packet, converted as the subscriber needs.
func (d *DownTrack) sendAudio(hdr CachedPacket, payload []byte) {
	a := d.audio.Load()
	if a == nil || a.mode == audioAsIs {
		d.send(hdr, payload, &d.packets)
		return
	}
	switch a.mode {
	case audioREDDecode, audioREDReencode:
		a.hdr = hdr
		a.hdr.PaddingSize = 0
		if err := a.dec.Decode(hdr.SeqNum, hdr.Timestamp, payload, a.emit); err != nil {
			d.dropped.Add(1)
		}
	case audioREDEncode:
		d.encodeRED(a, hdr, payload)
	}
}

// encodeRED sends one Opus frame as RED, with the redundant copies this
// subscriber's loss calls for.
func (d *DownTrack) encodeRED(a *audioState, hdr CachedPacket, opus []byte) {
	a.enc.SetDistance(red.DistanceForLoss(redundancyLoss(d.lossRate())))
	seq, ts, ok := d.rw.Rewrite(hdr.SeqNum, hdr.Timestamp)
	if !ok {
		d.dropped.Add(1)
		return
	}
	a.buf = a.enc.Encode(a.buf[:0], seq, ts, opus)
	hdr.PaddingSize = 0
	if d.write(hdr, seq, ts, a.buf) {
		d.packets.Add(1)
	}
}

// redundancyLoss adds a margin to a measured loss before it sizes
// redundancy: measurements are noisy, and one copy too few costs speech.
func redundancyLoss(loss float64) float64 { return min(1, loss*1.15) }

// noteReceiverReport takes the subscriber's loss for this track from its
// receiver report (an exponentially smoothed fraction).
func (d *DownTrack) noteReceiverReport(r *rtcp.ReceiverReport) {
	b := d.binding.Load()
	if b == nil {
		return
	}
	for _, rr := range r.Reports {
		if rr.SSRC != b.ssrc {
			continue
		}
		// the smoothed loss, but never below the latest report's: one copy
		// too many costs a little bitrate, one too few costs speech
		if rtt, ok := rttFromReport(rr, time.Now()); ok {
			d.rtt.Store(int64(rtt))
		}
		frac := float64(rr.FractionLost) / 256
		smooth := 0.5*d.lossSmooth + 0.5*frac
		d.lossSmooth = smooth
		d.loss.Store(math.Float64bits(max(smooth, frac)))
	}
}

// rttFromReport is the round-trip time a reception report gives (RFC 3550
// section 6.4.1): now - LSR - DLSR, in NTP's middle 32 bits. ok is false
// when the receiver has not seen a sender report yet.
func rttFromReport(rr rtcp.ReceptionReport, now time.Time) (time.Duration, bool) {
	if rr.LastSenderReport == 0 {
		return 0, false
	}
	secs := uint64(now.Unix()) + 2208988800 // NTP epoch: 1900
	frac := uint64(now.Nanosecond()) << 32 / 1e9
	mid := uint32((secs<<32 | frac) >> 16)
	d := mid - rr.LastSenderReport - rr.Delay
	if d > 10*65536 { // over 10 s: a clock step or a bogus report
		return 0, false
	}
	return time.Duration(uint64(d) * uint64(time.Second) / 65536), true
}

// RTT is the last round-trip time measured to the subscriber (0: none).
func (d *DownTrack) RTT() time.Duration { return time.Duration(d.rtt.Load()) }

// lossRate is the loss redundancy (audio RED, video FEC) should cover on
// this track (0..1): the larger of the subscriber's reported loss and the
// connection's (SetPathLoss), but no more than the connection's inherent
// loss when the bandwidth estimator knows it. Loss from congestion is not
// covered: more redundancy would only add to it. Audio is the exception up
// to audioCongestedLoss (at most two RED copies, the cap raised, not a
// floor): that costs twice the audio rate per track (about 64 kbit/s per
// active speaker for 32 kbit/s Opus), counted in the audio's demand, and
// speech lost at the onset of loss, before the estimator has told a lossy
// path from a congested one, is what users hear.
func (d *DownTrack) lossRate() float64 {
	loss := max(math.Float64frombits(d.loss.Load()), math.Float64frombits(d.pathLoss.Load()))
	if inh := d.inherentLoss.Load(); inh != nil {
		limit := *inh
		if !d.isVideo {
			limit = max(limit, audioCongestedLoss)
		}
		return min(loss, limit)
	}
	return loss
}

// audioCongestedLoss is the loss audio redundancy may cover whatever the
// estimator says of congestion: two RED copies (red.DistanceForLoss, after
// redundancyLoss's margin).
const audioCongestedLoss = 0.18

// SetPathLoss gives the connection's recent loss, from transport-wide
// feedback (about every 100 ms); called by the subscriber's control loop.
// Receiver reports come every 1 s for video and every 5 s for audio from
// Chromium: without this, a track's redundancy would follow loss that
// starts only seconds later.
func (d *DownTrack) SetPathLoss(loss float64) {
	if math.IsNaN(loss) {
		loss = 0
	}
	d.pathLoss.Store(math.Float64bits(min(max(loss, 0), 1)))
}

// SetInherentLoss caps the loss redundancy covers (see lossRate); called by
// the subscriber's control loop from its bandwidth estimator.
func (d *DownTrack) SetInherentLoss(loss float64) { d.inherentLoss.Store(&loss) }
