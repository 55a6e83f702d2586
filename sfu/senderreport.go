package sfu

import "time"

// SenderReportWriter is implemented by a down track's writer that wants the
// publisher's sender reports (a recorder aligns audio and video with them).
// The report's RTP timestamp is given in the stream the writer receives
// (the down track's rewritten timestamps).
type SenderReportWriter interface {
	SenderReport(ntp time.Time, rtpTS uint32)
}

// passSenderReport gives the writer, if it wants them, the publisher's
// latest sender report of the layer being forwarded; called by the writer
// goroutine after forwarding a packet of up.
func (d *DownTrack) passSenderReport(up *UpTrack) {
	sr := up.LastSenderReport()
	if sr == nil || sr == d.lastSR {
		return
	}
	b := d.binding.Load()
	if b == nil {
		return
	}
	w, ok := b.writer.(SenderReportWriter)
	if !ok {
		return
	}
	d.lastSR = sr
	w.SenderReport(sr.Time(), d.rw.TS(sr.RTPTime))
}
