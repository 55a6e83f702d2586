package recorder

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestVint(t *testing.T) {
	cases := []struct {
		n    uint64
		want []byte
	}{
		{0, []byte{0x80}},
		{1, []byte{0x81}},
		{126, []byte{0xFE}},
		{127, []byte{0x40, 0x7F}}, // 0xFF is reserved (unknown size)
		{16382, []byte{0x7F, 0xFE}},
		{16383, []byte{0x20, 0x3F, 0xFF}},
		{1<<21 - 2, []byte{0x3F, 0xFF, 0xFE}},
		{1<<21 - 1, []byte{0x10, 0x1F, 0xFF, 0xFF}},
		{maxVintValue, []byte{0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE}},
	}
	for _, c := range cases {
		if got := appendVint(nil, c.n); !bytes.Equal(got, c.want) {
			t.Errorf("vint(%d) = % x, want % x", c.n, got, c.want)
		}
		v, l, err := readVint(c.want, true)
		if err != nil || v != c.n || l != len(c.want) {
			t.Errorf("readVint(% x) = %d, %d, %v", c.want, v, l, err)
		}
	}
	if got := appendVintN(nil, 5, 4); !bytes.Equal(got, []byte{0x10, 0, 0, 5}) {
		t.Errorf("4-byte vint(5) = % x", got)
	}
}

func TestElements(t *testing.T) {
	cases := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"id4", appendID(nil, idEBML), []byte{0x1A, 0x45, 0xDF, 0xA3}},
		{"id3", appendID(nil, idTimecodeScale), []byte{0x2A, 0xD7, 0xB1}},
		{"id2", appendID(nil, idDuration), []byte{0x44, 0x89}},
		{"id1", appendID(nil, idVoid), []byte{0xEC}},
		{"uint0", appendUint(nil, idTrackNumber, 0), []byte{0xD7, 0x81, 0x00}},
		{"uint1", appendUint(nil, idTrackNumber, 1), []byte{0xD7, 0x81, 0x01}},
		{"uint256", appendUint(nil, idTrackNumber, 256), []byte{0xD7, 0x82, 0x01, 0x00}},
		{"uintN", appendUintN(nil, idSeekPosition, 1, 8), []byte{0x53, 0xAC, 0x88, 0, 0, 0, 0, 0, 0, 0, 1}},
		{"int", appendInt(nil, idDateUTC, -1), []byte{0x44, 0x61, 0x88, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}},
		{"float", appendFloat(nil, idDuration, 1.5), []byte{0x44, 0x89, 0x88, 0x3F, 0xF8, 0, 0, 0, 0, 0, 0}},
		{"string", appendString(nil, idDocType, "webm"), []byte{0x42, 0x82, 0x84, 'w', 'e', 'b', 'm'}},
		{"binary", appendBinary(nil, idCodecPrivate, []byte{1, 2}), []byte{0x63, 0xA2, 0x82, 1, 2}},
		{"unknown", appendUnknownMaster(nil, idSegment), []byte{0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}},
		{"master", appendMaster(nil, idVideo, func(b []byte) []byte {
			return appendUint(b, idPixelWidth, 320)
		}), []byte{0xE0, 0x84, 0xB0, 0x82, 0x01, 0x40}},
		{"block", appendSimpleBlock(nil, 2, -2, true, []byte{9}), []byte{0xA3, 0x85, 0x82, 0xFF, 0xFE, 0x80, 9}},
		{"block-delta", appendSimpleBlock(nil, 1, 300, false, nil), []byte{0xA3, 0x84, 0x81, 0x01, 0x2C, 0x00}},
	}
	for _, c := range cases {
		if !bytes.Equal(c.got, c.want) {
			t.Errorf("%s: % x, want % x", c.name, c.got, c.want)
		}
	}
}

func TestMasterLongSize(t *testing.T) {
	// a master whose content needs a 2-byte size: the content is shifted
	// left over the unused room
	payload := bytes.Repeat([]byte{0xAB}, 200)
	b := appendMaster([]byte{0x55}, idTracks, func(b []byte) []byte {
		return appendBinary(b, idCodecPrivate, payload)
	})
	e, err := parseElements(b[1:])
	if err != nil || len(e) != 1 || e[0].id != idTracks {
		t.Fatalf("parse: %v %+v", err, e)
	}
	kids, err := parseElements(e[0].data)
	if err != nil || len(kids) != 1 || !bytes.Equal(kids[0].data, payload) {
		t.Fatalf("children: %v", err)
	}
	if b[0] != 0x55 {
		t.Fatal("prefix clobbered")
	}
}

func TestVoid(t *testing.T) {
	for _, n := range []int{2, 3, 9, 11, 96, 128, 129, 130, 16385, 16386, 16387} {
		b := appendVoid(nil, n)
		if len(b) != n {
			t.Fatalf("Void(%d) is %d bytes", n, len(b))
		}
		e, err := parseElements(b)
		if err != nil || len(e) != 1 || e[0].id != idVoid {
			t.Fatalf("Void(%d): %v %+v", n, err, e)
		}
	}
	// the reserved Duration room fits a Duration element exactly
	if d := appendFloat(nil, idDuration, 1); len(d) != durationRoom {
		t.Fatalf("Duration is %d bytes, room %d", len(d), durationRoom)
	}
}

// element is a parsed EBML element (test helper).
type element struct {
	id      uint32
	off     int64 // offset of the element in its parent's data
	head    int   // header length
	size    int64 // -1: unknown
	data    []byte
	partial bool // the data runs past the end of the buffer
}

func readVint(b []byte, strip bool) (uint64, int, error) {
	if len(b) == 0 || b[0] == 0 {
		return 0, 0, errors.New("bad vint")
	}
	l := 1
	for b[0]&(0x80>>(l-1)) == 0 {
		l++
	}
	if len(b) < l {
		return 0, 0, errors.New("short vint")
	}
	v := uint64(b[0])
	if strip {
		v &= 0xFF >> l
	}
	for _, c := range b[1:l] {
		v = v<<8 | uint64(c)
	}
	return v, l, nil
}

// parseElements splits b into elements. Unknown sizes run to the end of b;
// an element cut short is returned with partial set.
func parseElements(b []byte) ([]element, error) {
	var out []element
	for off := 0; off < len(b); {
		id, il, err := readVint(b[off:], false)
		if err != nil {
			return out, err
		}
		size, sl, err := readVint(b[off+il:], true)
		if err != nil {
			return out, err
		}
		e := element{id: uint32(id), off: int64(off), head: il + sl, size: int64(size)}
		start := off + il + sl
		end := start + int(size)
		if sl == 8 && size == 1<<56-1 {
			e.size, end = -1, len(b)
		}
		if end > len(b) {
			e.partial, end = true, len(b)
		}
		e.data = b[start:end]
		out = append(out, e)
		off = end
	}
	return out, nil
}

func find(es []element, id uint32) *element {
	for i := range es {
		if es[i].id == id {
			return &es[i]
		}
	}
	return nil
}

func TestMKVStructure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.webm")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	tracks := []mkvTrack{
		{number: 1, uid: 11, codecID: "A_OPUS", private: opusHead(2), rate: 48000, chans: 2},
		{number: 2, uid: 22, video: true, codecID: "V_VP8", width: 320, height: 240},
	}
	m, err := newMKV(f, true, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), tracks)
	if err != nil {
		t.Fatal(err)
	}
	var flushes []int64
	m.onFlush = func(end int64) { flushes = append(flushes, end) }
	// 3 s of 20 ms audio and 30 fps video with a keyframe every second
	for ms := int64(0); ms < 3000; ms += 20 {
		if err := m.writeBlock(1, ms, true, false, 20, []byte{0xF8}); err != nil {
			t.Fatal(err)
		}
		if ms%100 == 0 {
			key := ms%1000 == 0
			if err := m.writeBlock(2, ms, key, true, 33, []byte{1, 2, 3}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := m.finish(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	top, err := parseElements(b)
	if err != nil || len(top) != 2 || top[0].id != idEBML || top[1].id != idSegment {
		t.Fatalf("top level: %v %+v", err, top)
	}
	if top[1].size != int64(len(top[1].data)) {
		t.Fatalf("segment size %d, data %d", top[1].size, len(top[1].data))
	}
	seg, err := parseElements(top[1].data)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint32
	clusters := 0
	for _, e := range seg {
		if e.id == idCluster {
			clusters++
			kids, err := parseElements(e.data)
			if err != nil || kids[0].id != idTimecode {
				t.Fatalf("cluster: %v", err)
			}
			continue
		}
		ids = append(ids, e.id)
	}
	want := []uint32{idSeekHead, idVoid, idInfo, idTracks, idCues}
	if len(ids) != len(want) {
		t.Fatalf("segment children %x, want %x", ids, want)
	}
	for i := range want {
		if ids[i] != want[i] {
			t.Fatalf("segment children %x, want %x", ids, want)
		}
	}
	if clusters != 3 || len(flushes) != 3 || flushes[2] != int64(len(b))-int64(len(seg[len(seg)-1].data))-int64(seg[len(seg)-1].head) {
		t.Fatalf("%d clusters, flushes at %v (file %d)", clusters, flushes, len(b))
	}
	info, _ := parseElements(find(seg, idInfo).data)
	dur := find(info, idDuration)
	if dur == nil || math.Float64frombits(binary.BigEndian.Uint64(dur.data)) != 3000 {
		t.Fatalf("duration: %+v", dur)
	}
	// SeekHead points at Info, Tracks and Cues
	sh, _ := parseElements(find(seg, idSeekHead).data)
	for _, s := range sh {
		kids, _ := parseElements(s.data)
		id := find(kids, idSeekID).data
		pos := int64(binary.BigEndian.Uint64(find(kids, idSeekPosition).data))
		target, _ := parseElements(top[1].data[pos:])
		if !bytes.Equal(appendID(nil, target[0].id), id) {
			t.Fatalf("seek to % x lands on %x", id, target[0].id)
		}
	}
	cues, _ := parseElements(find(seg, idCues).data)
	if len(cues) != 3 {
		t.Fatalf("%d cue points, want one per keyframe cluster", len(cues))
	}
}
