package simulcast

// The picture ID and TL0PICIDX fields that VP8 and VP9 payload descriptors
// share, and the offsets that keep them continuous across switches.

// idFields locates a descriptor's picture ID and TL0PICIDX.
type idFields struct {
	pidOff int  // offset of the picture ID, -1 when absent
	pid15  bool // 15-bit picture ID (M bit)
	tl0Off int  // offset of TL0PICIDX, -1 when absent
	pid    uint16
	tl0    uint8
}

// readPictureID reads the 7- or 15-bit picture ID at p[i] (both descriptors
// encode it alike: M bit first) and returns the offset after it; ok is false
// when it is truncated.
func (f *idFields) readPictureID(p []byte, i int) (next int, ok bool) {
	if len(p) <= i {
		return i, false
	}
	f.pidOff = i
	if p[i]&0x80 == 0 {
		f.pid = uint16(p[i] & 0x7F)
		return i + 1, true
	}
	if len(p) <= i+1 {
		return i, false
	}
	f.pid15 = true
	f.pid = uint16(p[i]&0x7F)<<8 | uint16(p[i+1])
	return i + 2, true
}

// numbering is a down track's picture ID and TL0PICIDX translation.
type numbering struct {
	started          bool
	pidOff           uint16
	tl0Off           uint8
	lastPID          uint16
	lastTL0          uint8
	havePID, haveTL0 bool
}

// switchTo re-anchors on a new source whose first packet has fields f; it
// reports false on the very first source (nothing to continue).
func (n *numbering) switchTo(f idFields) bool {
	if !n.started {
		n.started = true
		n.pidOff, n.tl0Off = 0, 0
		return false
	}
	if f.pidOff >= 0 && n.havePID {
		n.pidOff = n.lastPID + 1 - f.pid
	}
	if f.tl0Off >= 0 && n.haveTL0 {
		n.tl0Off = n.lastTL0 + 1 - f.tl0
	}
	return true
}

// rewrite applies the offsets to p's fields in place, recording the
// results as the last written when record is set.
func (n *numbering) rewrite(p []byte, f idFields, record bool) {
	if f.pidOff >= 0 {
		var pid uint16
		if f.pid15 {
			pid = (f.pid + n.pidOff) & 0x7FFF
			p[f.pidOff] = 0x80 | byte(pid>>8)
			p[f.pidOff+1] = byte(pid)
		} else {
			pid = (f.pid + n.pidOff) & 0x7F
			p[f.pidOff] = byte(pid)
		}
		// a late packet (sent out of order) keeps the last numbers: a switch
		// must continue after the newest picture, not after a late one
		if record && (!n.havePID || pidNewer(pid, n.lastPID, f.pid15)) {
			n.lastPID, n.havePID = pid, true
		}
	}
	if f.tl0Off >= 0 {
		v := f.tl0 + n.tl0Off
		p[f.tl0Off] = v
		if record && (!n.haveTL0 || int8(v-n.lastTL0) >= 0) {
			n.lastTL0, n.haveTL0 = v, true
		}
	}
}

// pidNewer reports whether picture ID a is at or after b (15- or 7-bit
// arithmetic).
func pidNewer(a, b uint16, long bool) bool {
	if long {
		return (a-b)&0x7FFF < 0x4000
	}
	return (a-b)&0x7F < 0x40
}
