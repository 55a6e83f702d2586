package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Synthetic media for publishers: Opus-sized audio packets at 50 per second
// and VP8 frames at a fixed bitrate, each frame split into packets of at
// most maxVideoPayload bytes with a valid VP8 payload descriptor (RFC 7741)
// and, on keyframes, a VP8 keyframe header (frame tag, start code, size) so
// that the SFU recognises keyframes and frame sizes. The payload bytes are
// otherwise zero: nothing decodes the pictures.

const (
	audioInterval   = 20 * time.Millisecond
	audioPayload    = 100 // bytes: a 40 kbit/s Opus frame
	audioTicks      = 960 // 20 ms at 48 kHz
	videoFPS        = 30
	maxVideoPayload = 1100
	// keyframeEvery bounds the time to a keyframe even without PLIs.
	keyframeEvery = 5 * time.Second
)

// mediaSource writes one synthetic track.
type mediaSource struct {
	track *webrtc.TrackLocalStaticRTP
	video bool
	size  int // bytes per frame

	mu        sync.Mutex
	seq       uint16
	ts        uint32
	keyNeeded bool
	lastKey   time.Time
	plis      int
}

func newAudioSource(stream string) (*mediaSource, error) {
	t, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
		"audio", stream)
	if err != nil {
		return nil, fmt.Errorf("audio track: %w", err)
	}
	return &mediaSource{track: t, size: audioPayload}, nil
}

func newVideoSource(stream string, kbps int) (*mediaSource, error) {
	t, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
		"video", stream)
	if err != nil {
		return nil, fmt.Errorf("video track: %w", err)
	}
	size := max(kbps*1000/8/videoFPS, 32)
	return &mediaSource{track: t, video: true, size: size, keyNeeded: true}, nil
}

// interval is the time between two frames.
func (s *mediaSource) interval() time.Duration {
	if s.video {
		return time.Second / videoFPS
	}
	return audioInterval
}

// vp8Packets returns the payloads of one VP8 frame of size bytes.
func vp8Packets(size int, key bool) [][]byte {
	frame := make([]byte, size)
	if key {
		// frame tag: keyframe (P=0), version 0, shown; first partition size 0
		frame[0] = 0x10
		// start code, then 14-bit width and height, little endian: 640x360
		copy(frame[3:], []byte{0x9d, 0x01, 0x2a, 640 & 0xff, 640 >> 8, 360 & 0xff, 360 >> 8})
	} else {
		frame[0] = 0x11 // P=1: an inter frame, shown
	}
	var out [][]byte
	for off := 0; off < len(frame); off += maxVideoPayload {
		end := min(off+maxVideoPayload, len(frame))
		p := make([]byte, 1+end-off)
		if off == 0 {
			p[0] = 0x10 // S: start of a partition, partition index 0
		}
		copy(p[1:], frame[off:end])
		out = append(out, p)
	}
	return out
}

// writeFrame writes one frame (one or more RTP packets).
func (s *mediaSource) writeFrame(now time.Time) error {
	s.mu.Lock()
	var payloads [][]byte
	if s.video {
		key := s.keyNeeded || now.Sub(s.lastKey) >= keyframeEvery
		if key {
			s.keyNeeded, s.lastKey = false, now
		}
		s.ts += 90000 / videoFPS
		payloads = vp8Packets(s.size, key)
	} else {
		s.ts += audioTicks
		payloads = [][]byte{make([]byte, s.size)}
	}
	pkts := make([]*rtp.Packet, len(payloads))
	for i, p := range payloads {
		s.seq++
		pkts[i] = &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: s.seq, Timestamp: s.ts,
			Marker: i == len(payloads)-1}, Payload: p}
	}
	s.mu.Unlock()
	for _, p := range pkts {
		if err := s.track.WriteRTP(p); err != nil {
			return fmt.Errorf("write rtp: %w", err)
		}
	}
	return nil
}

// readRTCP consumes the sender's RTCP (the interceptors need it read) and
// turns keyframe requests into a keyframe.
func (s *mediaSource) readRTCP(sender *webrtc.RTPSender) {
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				s.mu.Lock()
				s.keyNeeded = true
				s.plis++
				s.mu.Unlock()
			}
		}
	}
}

// pump writes frames at the source's rate until ctx ends.
func (s *mediaSource) pump(ctx context.Context) error {
	tick := time.NewTicker(s.interval())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			if err := s.writeFrame(now); err != nil {
				return err
			}
		}
	}
}
