package sfu

import (
	"encoding/binary"
	"sync"
	"testing"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// layerSource makes single-packet VP8 frames for one simulcast layer, with
// its own sequence numbers, timestamps and 15-bit picture IDs.
type layerSource struct {
	seq uint16
	ts  uint32
	pid uint16
	tl0 uint8
}

func (l *layerSource) frame(key bool) []byte {
	b := make([]byte, 12+6+4)
	b[0], b[1] = 0x80, 0x80|96
	binary.BigEndian.PutUint16(b[2:], l.seq)
	binary.BigEndian.PutUint32(b[4:], l.ts)
	binary.BigEndian.PutUint32(b[8:], 99)
	b[12] = 0x90                                    // X, S
	b[13] = 0xC0                                    // I, L
	b[14], b[15] = 0x80|byte(l.pid>>8), byte(l.pid) // M + 15-bit picture ID
	b[16] = l.tl0
	b[17] = 0x01
	if key {
		b[17] = 0x00
	}
	l.seq++
	l.ts += 3000
	l.pid = (l.pid + 1) & 0x7FFF
	l.tl0++
	return b
}

func vp8PID(payload []byte) (uint16, uint8) {
	return uint16(payload[2]&0x7F)<<8 | uint16(payload[3]), payload[4]
}

// recordingWriter keeps headers and payload copies.
type recordingWriter struct {
	fakeWriter
	pmu      sync.Mutex
	payloads [][]byte
}

func (w *recordingWriter) WriteRTP(h *rtp.Header, p []byte) (int, error) {
	w.pmu.Lock()
	w.payloads = append(w.payloads, append([]byte(nil), p...))
	w.pmu.Unlock()
	return w.fakeWriter.WriteRTP(h, p)
}

func (w *recordingWriter) all() ([]rtp.Header, [][]byte) {
	w.pmu.Lock()
	defer w.pmu.Unlock()
	return w.written(), append([][]byte(nil), w.payloads...)
}

func nackFor(seq uint16) []rtcp.Packet {
	return []rtcp.Packet{&rtcp.TransportLayerNack{Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{seq})}}
}

func TestLayerSwitchIsSeamless(t *testing.T) {
	ups := make([]*UpTrack, 3)
	for i := range ups {
		ups[i] = newVideoUp(nil)
		ups[i].ssrc.Store(uint32(100 + i))
	}
	pt := published(ups...)
	w := &recordingWriter{}
	d := NewDownTrack(pt, DownTrackOptions{})
	defer d.Close()
	if _, err := d.Bind(fakeCtx{w: w, ssrc: 7}); err != nil {
		t.Fatal(err)
	}
	pt.attach(d)
	if d.TargetLayer() != 2 {
		t.Fatalf("default target layer %d, want the highest", d.TargetLayer())
	}
	srcs := []*layerSource{{seq: 1000, ts: 5000, pid: 32000}, {seq: 20000, ts: 900000, pid: 7}, {seq: 65000, ts: 4e9, pid: 32760}}
	send := func(frames int, keyAt map[int]int) { // keyAt: layer -> frame index that is a keyframe
		for f := 0; f < frames; f++ {
			for l, s := range srcs {
				k, ok := keyAt[l]
				ups[l].handlePacket(s.frame(ok && k == f))
			}
		}
	}
	send(5, map[int]int{0: 0, 1: 0, 2: 2}) // layer 2 starts at its keyframe (frame 2)
	waitCount(t, &w.fakeWriter, 3)
	if d.CurrentLayer() != 2 {
		t.Fatalf("current layer %d", d.CurrentLayer())
	}
	d.SetTargetLayer(0, "test")
	send(4, map[int]int{0: 2}) // still layer 2 until layer 0's keyframe at frame 2
	waitCount(t, &w.fakeWriter, 7)
	if d.CurrentLayer() != 0 {
		t.Fatalf("current layer %d after the keyframe", d.CurrentLayer())
	}
	d.SetTargetLayer(1, "test")
	send(3, map[int]int{1: 1}) // layer 0 twice, then layer 1 from its keyframe
	waitCount(t, &w.fakeWriter, 11)

	hs, ps := w.all()
	for i := 1; i < len(hs); i++ {
		if hs[i].SequenceNumber != hs[i-1].SequenceNumber+1 {
			t.Fatalf("sequence gap at %d: %d after %d", i, hs[i].SequenceNumber, hs[i-1].SequenceNumber)
		}
		if d := hs[i].Timestamp - hs[i-1].Timestamp; d == 0 || d > 1<<30 {
			t.Fatalf("timestamp does not advance at %d: step %d", i, d)
		}
		pid, tl0 := vp8PID(ps[i])
		prevPID, prevTL0 := vp8PID(ps[i-1])
		if pid != (prevPID+1)&0x7FFF || tl0 != prevTL0+1 {
			t.Fatalf("VP8 numbering jumps at %d: picture %d after %d, tl0 %d after %d", i, pid, prevPID, tl0, prevTL0)
		}
		if hs[i].SSRC != 7 {
			t.Fatal("SSRC not rewritten")
		}
	}
	if st := d.Stats(); st.LayerSwitches != 2 {
		t.Fatalf("layer switches %d, want 2", st.LayerSwitches)
	}
	// a NACK for a packet sent before the last switch is not answered from
	// the wrong layer's cache
	d.HandleRTCP(nackFor(hs[0].SequenceNumber))
	d.HandleRTCP(nackFor(hs[len(hs)-1].SequenceNumber))
	waitCount(t, &w.fakeWriter, 12)
	hs2, _ := w.all()
	if hs2[11].SequenceNumber != hs[len(hs)-1].SequenceNumber {
		t.Fatalf("retransmitted %d", hs2[10].SequenceNumber)
	}
	if st := d.Stats(); st.NACKsMissed != 1 || st.Retransmissions != 1 {
		t.Fatalf("stats %+v", d.Stats())
	}
}

func TestWantedLayerFallsBackToExistingLayers(t *testing.T) {
	up := newVideoUp(nil)
	pt := newPublishedTrack(up.info, up.codec)
	pt.addLayer(1, up) // only the middle layer exists
	d := NewDownTrack(pt, DownTrackOptions{})
	defer d.Close()
	for target, want := range map[int]int{0: 1, 1: 1, 2: 1} {
		d.target.Store(int32(target))
		if got := d.wantedLayer(); got != want {
			t.Fatalf("target %d: wanted %d, want %d", target, got, want)
		}
	}
	audio := NewUpTrack(UpTrackOptions{Info: TrackInfo{ID: "a", Kind: webrtc.RTPCodecTypeAudio}, Codec: vp8Codec})
	da := NewDownTrack(published(audio), DownTrackOptions{})
	defer da.Close()
	if da.wantedLayer() != 0 {
		t.Fatal("audio should forward layer 0")
	}
}
