package red

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// fill returns n bytes derived from tag, to tell blocks apart.
func fill(tag byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = tag + byte(i)
	}
	return b
}

func blocksEqual(t *testing.T, got, want []Block) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d blocks, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.PT != w.PT || g.TSOffset != w.TSOffset || !bytes.Equal(g.Data, w.Data) {
			t.Fatalf("block %d: PT %d off %d len %d, want PT %d off %d len %d",
				i, g.PT, g.TSOffset, len(g.Data), w.PT, w.TSOffset, len(w.Data))
		}
	}
}

func TestParseKnownBytes(t *testing.T) {
	// PT 111, one redundant block 960 ticks back holding 01 02 03, primary 04 05.
	p := []byte{0xEF, 0x0F, 0x00, 0x03, 0x6F, 1, 2, 3, 4, 5}
	got, err := Parse(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	blocksEqual(t, got, []Block{
		{PT: 111, TSOffset: 960, Data: []byte{1, 2, 3}},
		{PT: 111, Data: []byte{4, 5}},
	})
	out, err := Append(nil, got[1], got[:1])
	if err != nil || !bytes.Equal(out, p) {
		t.Fatalf("Append = % x, %v; want % x", out, err, p)
	}

	// The largest offset and length: all field bits set.
	big := append([]byte{0xEF, 0xFF, 0xFF, 0xFF, 0x6F}, fill(0, MaxBlockLen)...)
	got, err = Parse(big, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].TSOffset != MaxTSOffset || len(got[0].Data) != MaxBlockLen || len(got[1].Data) != 0 {
		t.Fatalf("max fields: off %d len %d primary %d", got[0].TSOffset, len(got[0].Data), len(got[1].Data))
	}
}

func TestRoundTrip(t *testing.T) {
	lens := []int{0, 1, 80, 1023}
	for n := 0; n <= 4; n++ {
		for _, plen := range []int{0, 1, 120, 1500} {
			t.Run(fmt.Sprintf("redundant=%d/primary=%d", n, plen), func(t *testing.T) {
				var red []Block
				for i := range n {
					red = append(red, Block{
						PT:       uint8(96 + i),
						TSOffset: uint16((n - i) * 960 * 4 % (MaxTSOffset + 1)),
						Data:     fill(byte(16*i), lens[(i+n)%len(lens)]),
					})
				}
				if n > 0 {
					red[0].TSOffset = MaxTSOffset
				}
				primary := Block{PT: 111, Data: fill(0xA0, plen)}
				prefix := []byte("prefix")
				out, err := Append(prefix, primary, red)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.HasPrefix(out, []byte("prefix")) {
					t.Fatal("Append lost dst")
				}
				size := 1 + plen
				for _, b := range red {
					size += 4 + len(b.Data)
				}
				if len(out)-len(prefix) != size {
					t.Fatalf("payload %d bytes, want %d", len(out)-len(prefix), size)
				}
				got, err := Parse(out[len(prefix):], make([]Block, 0, 8))
				if err != nil {
					t.Fatal(err)
				}
				blocksEqual(t, got, append(red, primary))
			})
		}
	}
}

func TestParseReusesBlocks(t *testing.T) {
	e, _ := NewEncoder(111)
	e.SetDistance(4)
	var p []byte
	for i := range 5 {
		p = e.Encode(p[:0], uint16(i), uint32(i)*960, fill(byte(i), 100))
	}
	blocks := make([]Block, 0, 8)
	allocs := testing.AllocsPerRun(1000, func() {
		var err error
		if blocks, err = Parse(p, blocks); err != nil || len(blocks) != 5 {
			t.Fatal(len(blocks), err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Parse allocates %.1f times per call", allocs)
	}
	// Data slices are capped: appending to one cannot overwrite the next.
	if cap(blocks[0].Data) != len(blocks[0].Data) {
		t.Fatal("block data not capped")
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"empty", nil},
		{"only a redundant header", []byte{0xEF, 0x0F, 0x00, 0x00}},
		{"truncated header 1 byte", []byte{0xEF}},
		{"truncated header 3 bytes", []byte{0xEF, 0x0F, 0x00}},
		{"truncated second header", []byte{0xEF, 0x0F, 0x00, 0x00, 0xEF, 0x0F}},
		{"length beyond payload", []byte{0xEF, 0x0F, 0x00, 0x03, 0x6F, 1, 2}},
		{"lengths add beyond payload", []byte{0xEF, 0x1E, 0x00, 0x02, 0xEF, 0x0F, 0x00, 0x02, 0x6F, 1, 2, 3}},
		{"max length, short payload", append([]byte{0xEF, 0xFF, 0xFF, 0xFF, 0x6F}, make([]byte, 1022)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blocks, err := Parse(tc.payload, make([]Block, 3, 8))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if len(blocks) != 0 {
				t.Fatalf("%d blocks returned with the error", len(blocks))
			}
			t.Log(err)
		})
	}
	// A redundant block may be empty, and so may the primary.
	if got, err := Parse([]byte{0xEF, 0x0F, 0x00, 0x00, 0x6F}, nil); err != nil || len(got) != 2 {
		t.Fatalf("empty blocks: %v, %d blocks", err, len(got))
	}
}

func TestAppendErrors(t *testing.T) {
	ok := Block{PT: 111, TSOffset: 960, Data: fill(0, 10)}
	for _, tc := range []struct {
		name      string
		primary   Block
		redundant []Block
		want      error
	}{
		{"block too long", Block{PT: 111}, []Block{ok, {PT: 111, TSOffset: 960, Data: make([]byte, MaxBlockLen+1)}}, ErrBlockTooLong},
		{"offset beyond 14 bits", Block{PT: 111}, []Block{{PT: 111, TSOffset: MaxTSOffset + 1}}, ErrOffsetTooLarge},
		{"primary offset", Block{PT: 111, TSOffset: 960}, nil, ErrOffsetTooLarge},
		{"redundant PT", Block{PT: 111}, []Block{{PT: 128, TSOffset: 960}}, ErrBadPayloadType},
		{"primary PT", Block{PT: 200}, nil, ErrBadPayloadType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte{1, 2, 3}
			out, err := Append(dst, tc.primary, tc.redundant)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !bytes.Equal(out, []byte{1, 2, 3}) {
				t.Fatalf("dst changed on error: % x", out)
			}
			t.Log(err)
		})
	}
	// The primary has no length field: any length is fine.
	if _, err := Append(nil, Block{PT: 111, Data: make([]byte, 4000)}, []Block{ok}); err != nil {
		t.Fatal(err)
	}
}
