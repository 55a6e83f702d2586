package sfu

import (
	"encoding/binary"
	"time"

	"github.com/pion/rtp"
)

// Retransmissions toward a subscriber: NACKs answered from the up track's
// packet cache, on the RTX stream where negotiated.

// rtxRecords is the number of recent resends remembered (per down track).
const rtxRecords = 1024

// rtxRecord remembers when a sequence number was last resent.
type rtxRecord struct {
	seq   uint16
	count uint8 // resends so far
	at    int64 // unix nanoseconds of the last resend
}

// A NACK repeated within the holdoff of the last resend of the same packet
// is ignored: the resend is still in flight. The holdoff is half the
// subscriber's round trip, between rtxHoldoffMin and rtxHoldoffMax
// (rtxHoldoffUnknown before a receiver report gave the round trip). A
// receiver asks again about one round trip after its last NACK (Chromium:
// at its 20 ms NACK ticks once the RTT has passed); on a short path a fixed
// 30 ms holdoff ignored every other one of those retries, and the second
// chance of a lost retransmission came too late for the receiver's jitter
// buffer.
const (
	rtxHoldoffMin     = 2 * time.Millisecond
	rtxHoldoffMax     = 30 * time.Millisecond
	rtxHoldoffUnknown = 10 * time.Millisecond
)

// rtxHoldoff is the current holdoff (see rtxHoldoffMin).
func (d *DownTrack) rtxHoldoff() time.Duration {
	rtt := d.RTT()
	if rtt <= 0 {
		return rtxHoldoffUnknown
	}
	return min(max(rtt/2, rtxHoldoffMin), rtxHoldoffMax)
}

// maxResends bounds how often one packet is resent, and maxResendAge how
// old (since it reached the SFU) a resent packet may be: beyond that it
// arrives too late for the subscriber's jitter buffer and only adds load.
const (
	maxResends   = 8
	maxResendAge = time.Second
)

func (d *DownTrack) retransmit(seqs []uint16, buf []byte) {
	if a := d.audio.Load(); a != nil && (a.mode != audioAsIs) {
		return // the cache holds the other format; redundancy repairs these
	}
	at := time.Now()
	now := at.UnixNano()
	holdoff := int64(d.rtxHoldoff())
	copies := rtxCopies(d.lossRate())
	for _, out := range seqs {
		r := &d.rtxAt[out%rtxRecords]
		if r.seq != out {
			if r.at != 0 && now-r.at < int64(maxResendAge) {
				d.rtxStale.Add(1) // its slot is busy with another recent resend
				continue
			}
			*r = rtxRecord{seq: out}
		}
		if r.at != 0 && now-r.at < holdoff {
			continue
		}
		if r.count >= maxResends {
			d.rtxStale.Add(1)
			continue
		}
		kind := FirstResend
		if r.count > 0 {
			kind = RepeatResend
		}
		if !d.resend(out, buf, at, kind) {
			continue
		}
		r.at = now
		r.count++
		if copies > 1 && len(d.repeats) < maxRTXRepeats {
			d.repeats = append(d.repeats, rtxRepeat{seq: out, due: at.Add(rtxCopyGap), left: uint8(copies - 1)})
		}
	}
}

// resend sends packet out (a sequence number as the subscriber knows it)
// again, if it is still in the cache, young enough and within the
// retransmission budget.
func (d *DownTrack) resend(out uint16, buf []byte, at time.Time, kind ResendKind) bool {
	up := d.src.Layer(d.layerOf)
	in, ok := d.rw.Reverse(out)
	if !ok || up == nil {
		d.nackMiss.Add(1)
		return false
	}
	// read two bytes in: an RTX payload starts with the original sequence
	// number
	hdr, n, ok := up.cache.Get(in, buf[2:])
	if !ok {
		d.nackMiss.Add(1)
		return false
	}
	if at.UnixNano()-hdr.Arrival > int64(maxResendAge) {
		d.rtxStale.Add(1)
		return false
	}
	if !d.budget.Take(n+12, at, kind) {
		d.rtxOverBudget.Add(1)
		return false
	}
	// resend under the very number NACKed: the offset may have moved since
	// (padding inserted by a probe)
	if d.munger != nil {
		d.munger.MungeOld(buf[2 : 2+n])
	}
	if !d.writeRTX(hdr, out, d.rw.TS(hdr.Timestamp), buf[:2+n]) {
		return false
	}
	d.rtx.Add(1)
	return true
}

// Copies of a retransmission. A receiver that does not know its round trip
// (Chromium on a receive-only connection assumes 100 ms) asks again for a
// retransmission that was lost only after that long, when the frame is
// usually past its playout time: so on a lossy path each NACKed packet is
// sent rtxCopies times, rtxCopyGap apart, for the first NACK to repair it
// with good odds.
const (
	rtxResidual   = 0.02 // loss of all copies rtxCopies aims below
	maxRTXCopies  = 6
	rtxCopyGap    = 10 * time.Millisecond
	maxRTXRepeats = 256 // pending copies per down track
)

// rtxCopies is how many times to send a NACKed packet on a path with the
// given (inherent) loss: the fewest copies that all get lost with a
// probability below rtxResidual, at most maxRTXCopies; one below 2 % loss.
func rtxCopies(loss float64) int {
	if !(loss >= 0.02) {
		return 1
	}
	n := 1
	for p := loss; p > rtxResidual && n < maxRTXCopies; p *= loss {
		n++
	}
	return n
}

// rtxRepeat is a NACKed packet with copies still to send.
type rtxRepeat struct {
	seq  uint16
	due  time.Time
	left uint8
}

// sendRepeats sends the copies due at now; called by the writer.
func (d *DownTrack) sendRepeats(now time.Time, buf []byte) {
	keep := d.repeats[:0]
	for _, r := range d.repeats {
		if now.Before(r.due) {
			keep = append(keep, r)
			continue
		}
		rec := &d.rtxAt[r.seq%rtxRecords]
		if rec.seq != r.seq || !d.resend(r.seq, buf, now, CopyResend) {
			continue // its record was reused, or it cannot be sent any more
		}
		rec.at = now.UnixNano()
		if r.left--; r.left > 0 {
			r.due = now.Add(rtxCopyGap)
			keep = append(keep, r)
		}
	}
	clear(d.repeats[len(keep):])
	d.repeats = keep
}

// writeRTX resends a packet: on the RTX stream when negotiated (buf holds
// two free bytes for the original sequence number, then the payload), else
// on the media stream under its own number.
func (d *DownTrack) writeRTX(hdr CachedPacket, seq uint16, ts uint32, buf []byte) bool {
	b := d.binding.Load()
	if b == nil {
		return false
	}
	if b.rtxSSRC == 0 {
		return d.write(hdr, seq, ts, buf[2:])
	}
	binary.BigEndian.PutUint16(buf, seq)
	d.rtxSeq++
	d.rtxStream.Add(1)
	d.hdr = rtp.Header{
		Version:        2,
		Marker:         hdr.Marker,
		PayloadType:    b.rtxPT,
		SequenceNumber: d.rtxSeq,
		Timestamp:      ts,
		SSRC:           b.rtxSSRC,
	}
	_, err := b.writer.WriteRTP(&d.hdr, buf)
	return err == nil
}
