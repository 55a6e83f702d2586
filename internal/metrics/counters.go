package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorus-sfu/chorus/sfu"
)

// counterDef is one of the SFU's counters as a Prometheus counter.
type counterDef struct {
	desc  *prometheus.Desc
	field func(*sfu.Counters) *uint64
}

// counterDefs lists the SFU's counters. The SFU keeps no count of bytes
// sent to subscribers: there is no chorus_bytes_out_total.
func counterDefs() []counterDef {
	def := func(name, help string, field func(*sfu.Counters) *uint64) counterDef {
		return counterDef{desc: desc(name, help), field: field}
	}
	return []counterDef{
		def("packets_in_total", "RTP packets received from publishers (every simulcast layer).",
			func(c *sfu.Counters) *uint64 { return &c.PacketsIn }),
		def("bytes_in_total", "Bytes of RTP packets received from publishers, headers included.",
			func(c *sfu.Counters) *uint64 { return &c.BytesIn }),
		def("packets_out_total", "Media packets sent to subscribers (retransmissions, padding and FEC not included).",
			func(c *sfu.Counters) *uint64 { return &c.PacketsOut }),
		def("nacks_received_total", "Packets NACKed by subscribers that were resent, no longer cached, too old, "+
			"or over the retransmission budget (NACKs ignored while a resend is in flight are not counted).",
			func(c *sfu.Counters) *uint64 { return &c.NACKsReceived }),
		def("nacks_sent_total", "Packets NACKed to publishers.",
			func(c *sfu.Counters) *uint64 { return &c.NACKsSent }),
		def("plis_sent_total", "Keyframe requests (PLI) sent to publishers, after coalescing.",
			func(c *sfu.Counters) *uint64 { return &c.PLIsSent }),
		def("keyframe_requests_total", "Keyframe requests (PLI, FIR) received from subscribers.",
			func(c *sfu.Counters) *uint64 { return &c.KeyframeRequests }),
		def("retransmissions_total", "Packets resent to subscribers.",
			func(c *sfu.Counters) *uint64 { return &c.Retransmissions }),
		def("dropped_packets_total", "Packets not forwarded to subscribers (slow subscriber, gone from the cache).",
			func(c *sfu.Counters) *uint64 { return &c.Dropped }),
		def("duplicate_packets_total", "Packets received from publishers again, or too late to be stored; not forwarded.",
			func(c *sfu.Counters) *uint64 { return &c.Duplicates }),
		def("malformed_packets_total", "Packets from publishers that could not be parsed or stored.",
			func(c *sfu.Counters) *uint64 { return &c.Malformed }),
		def("layer_switches_total", "Simulcast layer switches of subscriptions.",
			func(c *sfu.Counters) *uint64 { return &c.LayerSwitches }),
		def("padding_packets_total", "Padding packets sent to subscribers to probe for bandwidth.",
			func(c *sfu.Counters) *uint64 { return &c.PaddingPackets }),
		def("fec_packets_total", "FEC (ULPFEC) packets sent to subscribers.",
			func(c *sfu.Counters) *uint64 { return &c.FECPackets }),
	}
}

// streamTotals turns the counters of live streams into totals that never
// decrease. A snapshot's sums fall when a stream ends (a participant
// leaves), which Prometheus would take for a counter reset and count the
// remaining sum again as new. So each stream is followed by key from scrape
// to scrape and only its growth is added; what an ended stream counted
// after the last scrape before its end is lost.
type streamTotals struct {
	last  map[string]sfu.Counters
	total sfu.Counters
}

// fallbackKey follows Snapshot.Totals as one stream when a snapshot lists
// no streams (one built by hand).
const fallbackKey = "\x00totals"

// update adds the growth of snap's streams since the previous snapshot and
// returns the totals.
func (s *streamTotals) update(snap sfu.Snapshot, defs []counterDef) sfu.Counters {
	streams := snap.Streams
	if len(streams) == 0 && snap.Totals != (sfu.Counters{}) {
		streams = []sfu.StreamCounters{{Key: fallbackKey, Counters: snap.Totals}}
	}
	next := make(map[string]sfu.Counters, len(streams))
	for _, st := range streams {
		prev := s.last[st.Key] // zero for a new stream
		cur := st.Counters
		for _, d := range defs {
			p, c := *d.field(&prev), *d.field(&cur)
			if c < p {
				p = 0 // a new stream under an old key: all of it is new
			}
			*d.field(&s.total) += c - p
		}
		next[st.Key] = cur
	}
	s.last = next
	return s.total
}
