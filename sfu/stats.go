package sfu

import (
	"fmt"
)

// Counters are media counters of one stream, or summed over streams. They
// come from the atomic counters the media path keeps anyway: reading them
// costs nothing per packet.
type Counters struct {
	// from publishers (up tracks, one per simulcast layer)
	PacketsIn  uint64 // RTP packets received, duplicates and malformed ones included
	BytesIn    uint64 // their size, RTP header included
	NACKsSent  uint64 // sequence numbers asked for again
	PLIsSent   uint64 // keyframe requests (PLI) actually sent, after coalescing
	Duplicates uint64 // packets received again, or too old to be stored; not forwarded
	Malformed  uint64 // packets that could not be parsed or stored

	// to subscribers (down tracks)
	PacketsOut uint64 // media packets written, retransmissions, padding and FEC not included
	// NACKsReceived counts the sequence numbers subscribers NACKed that
	// the SFU acted on: resent, no longer cached, too old or resent too
	// often, or over the connection's retransmission budget. The down
	// track does not count NACKs as they arrive, so those ignored while a
	// resend of the same packet is in flight, those of converted audio, and
	// those dropped while the writer was saturated are missing; the copies
	// of a resend sent unasked on lossy paths count as one more each.
	NACKsReceived    uint64
	KeyframeRequests uint64 // PLI and FIR received from subscribers
	Retransmissions  uint64 // packets resent, copies on lossy paths included
	Dropped          uint64 // packets not forwarded: slow subscriber, gone from the cache, layer stragglers
	LayerSwitches    uint64
	PaddingPackets   uint64 // padding-only packets sent to probe for bandwidth
	FECPackets       uint64 // ULPFEC packets sent
}

// Add adds o to c.
func (c *Counters) Add(o Counters) {
	c.PacketsIn += o.PacketsIn
	c.BytesIn += o.BytesIn
	c.NACKsSent += o.NACKsSent
	c.PLIsSent += o.PLIsSent
	c.Duplicates += o.Duplicates
	c.Malformed += o.Malformed
	c.PacketsOut += o.PacketsOut
	c.NACKsReceived += o.NACKsReceived
	c.KeyframeRequests += o.KeyframeRequests
	c.Retransmissions += o.Retransmissions
	c.Dropped += o.Dropped
	c.LayerSwitches += o.LayerSwitches
	c.PaddingPackets += o.PaddingPackets
	c.FECPackets += o.FECPackets
}

// StreamCounters are the counters of one live stream: an up track (one
// simulcast layer of a published track) or a down track. The counters of a
// stream only grow while it lives and are gone once it ends, so the sums in
// Snapshot.Totals fall when a participant leaves; a consumer that needs
// monotonic counters (Prometheus) follows each stream by Key.
type StreamCounters struct {
	// Key identifies the stream while it lives (opaque; a new stream never
	// reuses the key of one that lived at the same time).
	Key string
	Counters
}

// Snapshot is the SFU's state at one moment, for monitoring.
type Snapshot struct {
	Rooms        int
	Participants int
	// Tracks counts the published tracks by kind ("audio", "video"); a
	// simulcast track counts once.
	Tracks map[string]int
	// Subscriptions counts the participants' down tracks (recorders' down
	// tracks are not subscriptions).
	Subscriptions int
	// Totals sums Streams.
	Totals  Counters
	Streams []StreamCounters
	// BandwidthEstimates are the subscriber connections' bandwidth
	// estimates in bits per second, one per connection whose receiver has
	// sent transport-wide feedback (without feedback there is no estimate).
	BandwidthEstimates []float64
	// Data counts app data messages since the SFU started (monotonic).
	Data DataStats
}

// Snapshot walks the rooms, their participants, published tracks and
// subscriptions, and sums their counters. Locks are held only to copy
// lists; the counters are read afterwards.
func (s *SFU) Snapshot() Snapshot {
	snap := Snapshot{Tracks: map[string]int{}, Data: s.data.stats()}
	for _, r := range s.rooms.List() {
		ps, ts := r.statsMembers()
		snap.Rooms++
		snap.Participants += len(ps)
		for _, t := range ts {
			snap.Tracks[t.info.Kind.String()]++
			for _, u := range t.Layers() {
				snap.addStream(StreamCounters{
					Key:      fmt.Sprintf("up %s %d %p", t.info.ID, u.Layer(), u),
					Counters: u.counters(),
				})
			}
		}
		for _, p := range ps {
			for _, d := range p.Subscriptions() {
				snap.Subscriptions++
				snap.addStream(StreamCounters{
					Key:      fmt.Sprintf("down %s %s %p", p.id, d.id, d),
					Counters: d.counters(),
				})
			}
			if bps, ok := p.bandwidthEstimate(); ok {
				snap.BandwidthEstimates = append(snap.BandwidthEstimates, float64(bps))
			}
		}
	}
	return snap
}

func (snap *Snapshot) addStream(c StreamCounters) {
	snap.Streams = append(snap.Streams, c)
	snap.Totals.Add(c.Counters)
}

// statsMembers copies the room's participants and published tracks.
func (r *Room) statsMembers() ([]*Participant, []*PublishedTrack) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps := make([]*Participant, 0, len(r.participants))
	for _, p := range r.participants {
		ps = append(ps, p)
	}
	ts := make([]*PublishedTrack, 0, len(r.tracks))
	for _, t := range r.tracks {
		ts = append(ts, t)
	}
	return ps, ts
}

// bandwidthEstimate is the subscriber connection's estimate in bits per
// second, if its receiver has sent feedback. Unlike BandwidthStats it does
// not create an estimator for a participant that never had one.
func (p *Participant) bandwidthEstimate() (int, bool) {
	p.bw.mu.Lock()
	defer p.bw.mu.Unlock()
	if p.bw.est == nil || !p.bw.est.HasFeedback() {
		return 0, false
	}
	return p.bw.est.Estimate(), true
}

// counters reads the up track's counters as Counters.
func (t *UpTrack) counters() Counters {
	st := t.Stats()
	return Counters{
		PacketsIn: st.Packets, BytesIn: st.Bytes, NACKsSent: st.NACKsSent, PLIsSent: st.KeyframeRequests,
		Duplicates: st.Duplicates, Malformed: st.Malformed,
	}
}

// counters reads the down track's counters as Counters.
func (d *DownTrack) counters() Counters {
	st := d.Stats()
	return Counters{
		PacketsOut:       st.Packets,
		NACKsReceived:    st.Retransmissions + st.NACKsMissed + st.NACKsStale + st.NACKsOverBudget,
		KeyframeRequests: st.KeyframeAsks, Retransmissions: st.Retransmissions, Dropped: st.Dropped,
		LayerSwitches: st.LayerSwitches, PaddingPackets: st.PaddingPackets, FECPackets: st.FECPackets,
	}
}
