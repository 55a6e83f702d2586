package simulcast

// VP9 payload descriptor (RFC 9628 section 4.2) fields that a decoder
// expects to be continuous: the picture ID and, in non-flexible mode, the
// TL0PICIDX. When a down track switches from one simulcast stream to
// another, each stream has its own numbering; VP9Munger rewrites them so that
// the numbering the subscriber sees continues across the switch. Reference
// indices (P_DIFF) are differences and the scalability structure describes
// the stream, so both are left as they are.

// vp9Fields locates the rewritable fields of one descriptor.
type vp9Fields struct {
	idFields
	hasField bool
}

// parseVP9Fields reads the first byte, the picture ID and the layer indices;
// it reports false when they are truncated.
func parseVP9Fields(p []byte) (f vp9Fields, ok bool) {
	f.pidOff, f.tl0Off = -1, -1
	if len(p) < 1 {
		return f, false
	}
	b0 := p[0]
	i := 1
	if b0&0x80 != 0 { // I
		var ok bool
		if i, ok = f.readPictureID(p, i); !ok {
			return f, false
		}
	}
	if b0&0x20 != 0 { // L: TID/U/SID/D, then TL0PICIDX unless flexible (F)
		if len(p) <= i {
			return f, false
		}
		i++
		if b0&0x10 == 0 {
			if len(p) <= i {
				return f, false
			}
			f.tl0Off = i
			f.tl0 = p[i]
		}
	}
	f.hasField = f.pidOff >= 0 || f.tl0Off >= 0
	return f, true
}

// VP9Munger keeps VP9 numbering continuous for one down track. It is owned
// by the down track's writer goroutine.
type VP9Munger struct{ n numbering }

// Switch re-anchors the numbering on a new source whose first packet (a
// keyframe) is p, so that its numbers follow the last ones written.
func (m *VP9Munger) Switch(p []byte) {
	if f, ok := parseVP9Fields(p); ok {
		m.n.switchTo(f.idFields)
	}
}

// Munge rewrites p's descriptor in place with the current offsets and
// remembers its numbers as the last written.
func (m *VP9Munger) Munge(p []byte) { m.munge(p, true) }

// MungeOld rewrites a packet sent before (a retransmission) without
// taking its older numbers as the last written.
func (m *VP9Munger) MungeOld(p []byte) { m.munge(p, false) }

func (m *VP9Munger) munge(p []byte, record bool) {
	if f, ok := parseVP9Fields(p); ok && f.hasField {
		m.n.rewrite(p, f.idFields, record)
	}
}
