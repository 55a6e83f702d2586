package sfu

import (
	"encoding/binary"
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

// An RTX packet of a routed stream reaches the up track from the RTX
// stream's own reader, rewritten into the packet it repairs, and pion gets
// an empty read; padding is dropped; a stream not routed passes through.
func TestRTXTapHandsRepairsToTheUpTrack(t *testing.T) {
	up := newVideoUp(nil)
	w := &fakeWriter{}
	d := bindDown(t, up, w, 64)
	defer d.Close()
	p := &packetizer{perFrame: 2, seq: 500}
	frame := p.frameAt(true)
	up.handlePacket(frame[0]) // the frame's second packet is lost
	routes := newRTXRoutes()
	routes.add(777, up)

	rtx := func(ssrc uint32, of []byte) []byte {
		b := append(make([]byte, 0, len(of)+2), of[:12]...) // marker and timestamp kept
		b[1] = b[1]&0x80 | 97
		binary.BigEndian.PutUint16(b[2:], 9) // the RTX stream's own number
		binary.BigEndian.PutUint32(b[8:], ssrc)
		b = binary.BigEndian.AppendUint16(b, binary.BigEndian.Uint16(of[2:]))
		return append(b, of[12:]...)
	}
	var queue [][]byte
	src := interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n := copy(b, queue[0])
		queue = queue[1:]
		return n, a, nil
	})
	rd := routes.bindRepair(&interceptor.StreamInfo{MimeType: webrtc.MimeTypeRTX}, src)
	buf := make([]byte, 1500)

	queue = append(queue, rtx(777, frame[1]))
	if n, _, err := rd.Read(buf, nil); n != 0 || err != nil {
		t.Fatalf("a routed RTX packet was left to pion: %d bytes, %v", n, err)
	}
	waitCount(t, w, 2)
	hs := w.written()
	if hs[1].SequenceNumber != hs[0].SequenceNumber+1 || !hs[1].Marker || hs[1].PayloadType != 100 {
		t.Fatalf("repaired packet forwarded as %+v after %+v", hs[1], hs[0])
	}
	if st := up.Stats(); st.Packets != 2 || st.Malformed != 0 {
		t.Fatalf("up track stats %+v", st)
	}

	pad := make([]byte, 12+4)
	pad[0], pad[1] = 0xA0, 97 // padding only: a bandwidth probe
	binary.BigEndian.PutUint32(pad[8:], 777)
	pad[15] = 4
	queue = append(queue, pad, rtx(888, frame[1]))
	if n, _, _ := rd.Read(buf, nil); n != 0 {
		t.Fatalf("RTX padding passed on (%d bytes)", n)
	}
	if n, _, _ := rd.Read(buf, nil); n == 0 {
		t.Fatal("an RTX stream with no route was swallowed")
	}
	if st := up.Stats(); st.Packets != 2 {
		t.Fatalf("padding or an unrouted packet reached the up track: %+v", st)
	}
}
