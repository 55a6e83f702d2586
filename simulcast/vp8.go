package simulcast

// VP8 payload descriptor (RFC 7741 section 4.2) fields that a decoder
// expects to be continuous: the picture ID, TL0PICIDX and KEYIDX. When a
// down track switches from one simulcast layer to another, each layer has
// its own numbering; VP8Munger rewrites them so that the numbering the
// subscriber sees continues across the switch.

// vp8Fields locates the rewritable fields of one descriptor.
type vp8Fields struct {
	idFields
	keyOff   int // offset of the T/Y/KEYIDX byte, -1 when KEYIDX is absent
	keyIdx   uint8
	hasField bool
}

func parseVP8Fields(p []byte) (f vp8Fields, ok bool) {
	f.pidOff, f.tl0Off, f.keyOff = -1, -1, -1
	if len(p) < 1 {
		return f, false
	}
	if p[0]&0x80 == 0 { // no extension byte: nothing to rewrite
		return f, true
	}
	if len(p) < 2 {
		return f, false
	}
	x := p[1]
	i := 2
	if x&0x80 != 0 { // I
		var ok bool
		if i, ok = f.readPictureID(p, i); !ok {
			return f, false
		}
	}
	if x&0x40 != 0 { // L
		if len(p) <= i {
			return f, false
		}
		f.tl0Off = i
		f.tl0 = p[i]
		i++
	}
	if x&0x30 != 0 { // T or K
		if len(p) <= i {
			return f, false
		}
		if x&0x10 != 0 {
			f.keyOff = i
			f.keyIdx = p[i] & 0x1F
		}
	}
	f.hasField = f.pidOff >= 0 || f.tl0Off >= 0 || f.keyOff >= 0
	return f, true
}

// VP8Munger keeps VP8 numbering continuous for one down track. It is owned
// by the down track's writer goroutine.
type VP8Munger struct {
	n       numbering
	keyOff  uint8
	lastKey uint8
	haveKey bool
}

// Switch re-anchors the numbering on a new source whose first packet (a
// keyframe) is p, so that its numbers follow the last ones written.
func (m *VP8Munger) Switch(p []byte) {
	f, ok := parseVP8Fields(p)
	if !ok {
		return
	}
	if !m.n.switchTo(f.idFields) {
		m.keyOff = 0
		return
	}
	if f.keyOff >= 0 && m.haveKey {
		m.keyOff = m.lastKey + 1 - f.keyIdx
	}
}

// Munge rewrites p's descriptor in place with the current offsets and
// remembers its numbers as the last written.
func (m *VP8Munger) Munge(p []byte) { m.munge(p, true) }

// MungeOld rewrites a packet sent before (a retransmission) without
// taking its older numbers as the last written.
func (m *VP8Munger) MungeOld(p []byte) { m.munge(p, false) }

func (m *VP8Munger) munge(p []byte, record bool) {
	f, ok := parseVP8Fields(p)
	if !ok || !f.hasField {
		return
	}
	m.n.rewrite(p, f.idFields, record)
	if f.keyOff >= 0 {
		v := (f.keyIdx + m.keyOff) & 0x1F
		p[f.keyOff] = p[f.keyOff]&0xE0 | v
		if record && (!m.haveKey || (v-m.lastKey)&0x1F < 0x10) {
			m.lastKey, m.haveKey = v, true
		}
	}
}
