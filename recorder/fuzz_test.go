package recorder

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// fuzzTrack is a track wired to a recorder whose goroutine does not run:
// the test drives the processing itself.
func fuzzTrack(c codec) *TrackRecorder {
	now := func() time.Time { return localEpoch }
	p := &ParticipantRecorder{
		o:    Options{Now: now, QueueSize: 64, JitterDelay: 100 * time.Millisecond},
		log:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		wake: make(chan struct{}, 1),
	}
	return newTrack(p, c, TrackOptions{Codec: webrtc.RTPCodecCapability{MimeType: c.mime()}, RequestKeyframe: func() {}})
}

// fuzzPackets encodes packets as the fuzz input: per packet a flags byte
// (bit 0 marker, bits 1-2 sequence step, bit 7 next timestamp), a length
// byte, the payload.
func fuzzPackets(c codec, pkts [][]byte, markers []bool) []byte {
	b := []byte{byte(c - 1)}
	for i, p := range pkts {
		flags := byte(2) // sequence step 1
		if markers[i] {
			flags |= 1 | 0x80
		}
		b = append(b, flags, byte(len(p)))
		b = append(b, p...)
	}
	return b
}

func FuzzDepacketize(f *testing.F) {
	for _, seed := range []struct {
		c      codec
		frames []mediaFrame
	}{
		{codecVP8, synthVP8(3, 2)},
		{codecVP9, []mediaFrame{{data: append([]byte{0x82, 0x49, 0x83, 0x42, 0x00, 0x13, 0xF0, 0x0E, 0xF6}, make([]byte, 300)...)}}},
		{codecH264, []mediaFrame{{data: append(append(append([]byte{0, 0, 0, 1}, sps320...), 0, 0, 0, 1, 0x68, 0xCE, 0x0F, 0xC8, 0, 0, 0, 1, 0x65),
			make([]byte, 400)...)}}},
		{codecOpus, synthOpus(3)},
	} {
		var pkts [][]byte
		var markers []bool
		pay := payloader(seed.c.mime())
		for _, fr := range seed.frames {
			ps := pay.Payload(200, fr.data)
			for i, p := range ps {
				pkts = append(pkts, p)
				markers = append(markers, i == len(ps)-1)
			}
		}
		f.Add(fuzzPackets(seed.c, pkts, markers))
	}
	f.Add([]byte{2, 0x81, 4, 0x7C, 0x85, 0x67, 0x42}) // an FU-A of an SPS
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 1 {
			return
		}
		c := codec(data[0]%4 + 1)
		tr := fuzzTrack(c)
		var seq uint16 = 65530
		var ts uint32 = 1<<32 - 5000
		for data = data[1:]; len(data) >= 2; {
			flags, n := data[0], int(data[1])
			data = data[2:]
			n = min(n, len(data))
			payload := data[:n]
			data = data[n:]
			seq += uint16(flags >> 1 & 3)
			h := rtp.Header{SequenceNumber: seq, Timestamp: ts, Marker: flags&1 != 0, SSRC: 1}
			if flags&0x80 != 0 {
				ts += 3000
			}
			tr.WriteRTP(&h, payload)
			tr.drain(localEpoch, false)
		}
		tr.finish(localEpoch)
		m, err := newMKV(io.Discard, false, localEpoch, []mkvTrack{{number: 1, uid: 1, video: c.video(), codecID: c.matroskaID()}})
		if err != nil {
			t.Fatal(err)
		}
		for ms := int64(0); tr.head() != nil; ms += 10 {
			fr := tr.popHead()
			checkFrame(t, c, fr)
			if err := m.writeBlock(1, ms, fr.key, c.video(), 10, fr.data); err != nil {
				t.Fatal(err)
			}
		}
		if err := m.finish(); err != nil {
			t.Fatal(err)
		}
		parseSPS(data)
	})
}

// checkFrame checks the framing the recorder produced: H264 length
// prefixes and VP9 superframe indexes must cover the data exactly.
func checkFrame(t *testing.T, c codec, f *frame) {
	switch c {
	case codecH264:
		for b := f.data; len(b) > 0; {
			if len(b) < 4 {
				t.Fatalf("AVCC: trailing % x", b)
			}
			n := int(binary.BigEndian.Uint32(b))
			if n == 0 || n > len(b)-4 {
				t.Fatalf("AVCC: NAL size %d of %d", n, len(b)-4)
			}
			b = b[4+n:]
		}
	case codecVP9:
		if len(f.layers) == 0 {
			return
		}
		last := f.data[len(f.data)-1]
		frames, mag := int(last&7)+1, int(last>>3&3)+1
		index := 2 + frames*mag
		if last&0xE0 != 0xC0 || f.data[len(f.data)-index] != last {
			t.Fatalf("VP9 superframe marker % x", f.data[len(f.data)-index:])
		}
		total := 0
		for i := range frames {
			var size int
			for j := range mag {
				size |= int(f.data[len(f.data)-index+1+i*mag+j]) << (8 * j)
			}
			total += size
		}
		if total != len(f.data)-index {
			t.Fatalf("VP9 superframe sizes %d, data %d", total, len(f.data)-index)
		}
	case codecOpus:
		if !bytes.Equal(f.data, f.data[:len(f.data):len(f.data)]) || len(f.data) == 0 {
			t.Fatal("empty Opus frame")
		}
	}
}
