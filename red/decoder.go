package red

// DefaultFrameDuration is the packet duration, in RTP ticks, a Decoder
// assumes until it has measured one: 20 ms of Opus at 48 kHz, what browsers
// send.
const DefaultFrameDuration = 960

// window is how many sequence numbers, up to the highest one received, a
// Decoder remembers what it emitted; older packets are dropped. It is well
// above the 17 frames of 20 ms that a 14-bit offset reaches, and lets a
// reordered packet arrive up to 2.56 s (at 20 ms) behind the newest.
const window = 128

// slot records one emitted packet.
type slot struct {
	ext     int64  // extended sequence number; the slot is empty unless it matches
	ts      uint32 // timestamp the packet was emitted with
	primary bool   // received as a primary, not only rebuilt from redundancy
}

// candidate is a redundant block that may rebuild a missing packet.
type candidate struct {
	ext  int64
	ts   uint32
	data []byte
}

// Decoder turns one received RED stream (one SSRC) back into plain Opus
// packets, rebuilding lost packets from the redundancy of later ones.
//
// It assumes, as browsers send it, one Opus frame per RTP packet and frames
// of equal duration, so that sequence numbers and timestamps advance in
// lockstep: the packet k before packet N has timestamp ts(N) - k*F, where F
// is the frame duration in ticks. A redundant block of packet N with offset
// k*F is therefore emitted as packet N-k with timestamp ts(N) - k*F. F is
// measured from the timestamps of primaries with consecutive sequence
// numbers (DefaultFrameDuration until then), and a block is only used when
// the packets received around the gap it fills agree with that lockstep:
// for the nearest emitted packets a < N-k < b,
//
//	ts(b) - ts(a) == (b-a)*F  and  ts(N) - k*F == ts(a) + (N-k-a)*F.
//
// Blocks whose offset is not a multiple of F, or that fall where the stream
// is not in lockstep (DTX pauses, a change of frame size), are not used,
// and a wrong F only costs recovery. Within the assumption rebuilt packets
// get their true sequence numbers. Outside it, frame durations that vary
// inside a gap yet add up to whole frames can give a rebuilt packet a
// neighbouring sequence number, though always its own timestamp, which is
// what a receiver's jitter buffer plays it by. A packet is only rebuilt
// when some packet before it has been emitted, so nothing is emitted
// before the first packet received.
//
// A Decoder never emits the same sequence number twice, nor a packet older
// than the 128 sequence numbers below the highest received; it copes with
// sequence number wrap-around, reordering and duplicates. Use one Decoder
// per SSRC, and Reset it if the SSRC changes. The zero value is ready to
// use.
type Decoder struct {
	started bool
	highest int64  // highest extended sequence number received
	frame   uint32 // measured frame duration, 0 until measured
	win     [window]slot
	blocks  []Block
	cands   []candidate
}

// NewDecoder returns a Decoder.
func NewDecoder() *Decoder { return &Decoder{} }

// Reset forgets the stream, for a new SSRC.
func (d *Decoder) Reset() {
	*d = Decoder{blocks: d.blocks[:0], cands: d.cands[:0]}
}

// FrameDuration returns the frame duration in ticks the Decoder uses.
func (d *Decoder) FrameDuration() uint32 {
	if d.frame == 0 {
		return DefaultFrameDuration
	}
	return d.frame
}

// Decode takes the next received RED packet: its RTP sequence number,
// timestamp and payload (the RTP payload, padding removed). It calls emit
// for each plain Opus packet it yields, in increasing sequence order: first
// the packets rebuilt from the redundancy, then the primary, unless that
// was emitted before. The opus slice passed to emit references payload.
//
// A payload that does not parse is dropped, and the error returned (it
// wraps ErrMalformed); nothing else is an error: duplicates and packets too
// old for the window are dropped silently. Decode does not allocate, except
// for growing its scratch space the first time a packet has more blocks
// than any before.
func (d *Decoder) Decode(seq uint16, ts uint32, payload []byte, emit func(seq uint16, ts uint32, opus []byte)) error {
	blocks, err := Parse(payload, d.blocks)
	d.blocks = blocks[:0]
	if err != nil {
		return err
	}

	ext := d.extend(seq)
	if ext <= d.highest-window {
		return nil // too old
	}
	if ext > d.highest {
		d.highest = ext
	}
	s := d.lookup(ext)
	if s != nil && s.primary {
		return nil // duplicate
	}
	emitPrimary := s == nil
	s = &d.win[ext%window]
	*s = slot{ext: ext, ts: ts, primary: true}
	d.measure(ext, ts)

	// Candidates: redundant blocks at a multiple of the frame duration, for
	// packets in the window not yet emitted, in increasing order.
	f := d.FrameDuration()
	cands := d.cands[:0]
	for _, b := range blocks[:len(blocks)-1] {
		if b.TSOffset == 0 || uint32(b.TSOffset)%f != 0 || len(b.Data) == 0 {
			continue
		}
		e := ext - int64(uint32(b.TSOffset)/f)
		if e <= d.highest-window || d.lookup(e) != nil {
			continue
		}
		c := candidate{ext: e, ts: ts - uint32(b.TSOffset), data: b.Data}
		i := len(cands)
		cands = append(cands, c)
		for ; i > 0 && cands[i-1].ext > e; i-- {
			cands[i] = cands[i-1]
		}
		cands[i] = c
	}
	for _, c := range cands {
		if d.lookup(c.ext) != nil || !d.inLockstep(c.ext, c.ts, f) {
			continue // emitted from an earlier block of this packet, or inconsistent
		}
		d.win[c.ext%window] = slot{ext: c.ext, ts: c.ts}
		emit(uint16(c.ext), c.ts, c.data)
	}
	clear(cands) // do not pin the payload
	d.cands = cands[:0]

	if emitPrimary {
		emit(seq, ts, blocks[len(blocks)-1].Data)
	}
	return nil
}

// extend returns the extended sequence number of seq, the one nearest to
// the highest received.
func (d *Decoder) extend(seq uint16) int64 {
	if !d.started {
		d.started = true
		d.highest = 1<<32 + int64(seq) // far from zero: an ext is never 0
		return d.highest
	}
	return d.highest + int64(int16(seq-uint16(d.highest)))
}

// lookup returns the slot of ext, or nil when ext has not been emitted.
func (d *Decoder) lookup(ext int64) *slot {
	if s := &d.win[ext%window]; s.ext == ext {
		return s
	}
	return nil
}

// measure updates the frame duration from a primary's neighbours received
// as primaries.
func (d *Decoder) measure(ext int64, ts uint32) {
	if p := d.lookup(ext - 1); p != nil && p.primary {
		d.setFrame(ts - p.ts)
	}
	if n := d.lookup(ext + 1); n != nil && n.primary {
		d.setFrame(n.ts - ts)
	}
}

func (d *Decoder) setFrame(f uint32) {
	if f > 0 && f <= MaxTSOffset { // not a DTX pause, not a reordering artefact
		d.frame = f
	}
}

// inLockstep reports whether a packet rebuilt as ext with timestamp ts fits
// between the nearest emitted packets before and after it.
func (d *Decoder) inLockstep(ext int64, ts uint32, f uint32) bool {
	var prev, next *slot
	for e := ext - 1; e > d.highest-window; e-- {
		if prev = d.lookup(e); prev != nil {
			break
		}
	}
	for e := ext + 1; e <= d.highest; e++ {
		if next = d.lookup(e); next != nil {
			break
		}
	}
	if prev == nil || next == nil {
		return false
	}
	return next.ts-prev.ts == uint32(next.ext-prev.ext)*f &&
		ts-prev.ts == uint32(ext-prev.ext)*f
}
