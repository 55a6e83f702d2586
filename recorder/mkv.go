package recorder

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// mkvTrack describes one track of a Matroska file.
type mkvTrack struct {
	number  int    // 1..126
	uid     uint64 // non-zero
	video   bool
	codecID string // A_OPUS, V_VP8, V_VP9, V_MPEG4/ISO/AVC
	private []byte // CodecPrivate, if any
	width   int    // video
	height  int
	rate    float64 // audio
	chans   int
}

// Cluster limits: a cluster is closed after clusterMaxMs of media so that
// at most that much is lost when the process dies, and before a video
// keyframe when it already holds video, so that the keyframe cues point
// at clusters whose first video block is that keyframe.
const (
	clusterMaxMs = 1000
	// room reserved at the start of the cluster buffer for its header:
	// 4-byte ID and an 8-byte size at most
	clusterHeadRoom = 12
	seekHeadRoom    = 96 // Void reserved for the SeekHead written at the end
	durationRoom    = 11 // Void reserved for Duration: 2-byte ID, 1-byte size, 8-byte float
)

type cue struct {
	ms    int64
	track int
	pos   int64 // cluster position, relative to the segment's data
}

// mkvWriter writes a Matroska/WebM file progressively: a Segment of
// unknown size, then every cluster as soon as it is complete, each with one
// Write call, so that a copy of the file taken at any time (or the file
// left by a killed process) holds complete clusters up to the last second.
// finish writes Cues and, when the output supports WriteAt, patches the
// SeekHead, the Duration and the Segment size in place.
type mkvWriter struct {
	w   io.Writer
	off int64 // bytes written so far

	segData  int64 // file offset of the Segment's data
	seekAt   int64 // file offset of the reserved SeekHead Void
	durAt    int64 // file offset of the reserved Duration Void
	infoPos  int64 // positions relative to segData
	trackPos int64

	tracks   []mkvTrack
	hasVideo bool

	cluster    []byte // header room + Timecode + blocks
	clusterOn  bool
	clusterTC  int64 // ms
	clusterPos int64 // position of the open cluster, relative to segData
	// the open cluster holds a video block (the next keyframe starts a
	// new cluster)
	clusterVideo bool
	cues         []cue

	endMs int64 // end of the last block of any track, for Duration

	onFlush func(end int64) // test hook: called after each cluster write
}

// newMKV writes the file header (EBML header, Segment start, SeekHead
// room, Info, Tracks). webm selects DocType "webm" (VP8/VP9/Opus only).
func newMKV(w io.Writer, webm bool, start time.Time, tracks []mkvTrack) (*mkvWriter, error) {
	m := &mkvWriter{w: w, tracks: tracks, cluster: make([]byte, clusterHeadRoom, 64<<10)}
	for _, t := range tracks {
		m.hasVideo = m.hasVideo || t.video
	}
	doc := "matroska"
	if webm {
		doc = "webm"
	}
	b := make([]byte, 0, 1024)
	b = appendMaster(b, idEBML, func(b []byte) []byte {
		b = appendUint(b, idEBMLVersion, 1)
		b = appendUint(b, idEBMLReadVersion, 1)
		b = appendUint(b, idEBMLMaxIDLength, 4)
		b = appendUint(b, idEBMLMaxSizeLength, 8)
		b = appendString(b, idDocType, doc)
		b = appendUint(b, idDocTypeVersion, 4)
		return appendUint(b, idDocTypeReadVersion, 2)
	})
	b = appendUnknownMaster(b, idSegment)
	m.segData = int64(len(b))
	m.seekAt = int64(len(b))
	b = appendVoid(b, seekHeadRoom)

	m.infoPos = int64(len(b)) - m.segData
	b = appendMaster(b, idInfo, func(b []byte) []byte {
		b = appendUint(b, idTimecodeScale, uint64(time.Millisecond))
		b = appendString(b, idMuxingApp, "chorus")
		b = appendString(b, idWritingApp, "chorus recorder")
		// DateUTC: nanoseconds since 2001-01-01T00:00:00 UTC
		b = appendInt(b, idDateUTC, start.Sub(time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)).Nanoseconds())
		return appendVoid(b, durationRoom)
	})
	// the Duration Void is the last element of Info, the last thing in b
	m.durAt = int64(len(b) - durationRoom)

	m.trackPos = int64(len(b)) - m.segData
	b = appendMaster(b, idTracks, func(b []byte) []byte {
		for _, t := range tracks {
			b = appendTrackEntry(b, t)
		}
		return b
	})
	if err := m.write(b); err != nil {
		return nil, err
	}
	return m, nil
}

func appendTrackEntry(b []byte, t mkvTrack) []byte {
	return appendMaster(b, idTrackEntry, func(b []byte) []byte {
		b = appendUint(b, idTrackNumber, uint64(t.number))
		b = appendUint(b, idTrackUID, t.uid)
		b = appendUint(b, idFlagLacing, 0)
		b = appendString(b, idCodecID, t.codecID)
		if len(t.private) > 0 {
			b = appendBinary(b, idCodecPrivate, t.private)
		}
		if t.video {
			b = appendUint(b, idTrackType, 1)
			return appendMaster(b, idVideo, func(b []byte) []byte {
				b = appendUint(b, idPixelWidth, uint64(t.width))
				return appendUint(b, idPixelHeight, uint64(t.height))
			})
		}
		b = appendUint(b, idTrackType, 2)
		if t.codecID == "A_OPUS" {
			b = appendUint(b, idSeekPreRoll, uint64(80*time.Millisecond))
		}
		return appendMaster(b, idAudio, func(b []byte) []byte {
			b = appendFloat(b, idSamplingFrequency, t.rate)
			return appendUint(b, idChannels, uint64(t.chans))
		})
	})
}

func (m *mkvWriter) write(b []byte) error {
	n, err := m.w.Write(b)
	m.off += int64(n)
	if err != nil {
		return fmt.Errorf("recorder: write media file: %w", err)
	}
	return nil
}

// writeBlock adds one frame of track at ms (milliseconds since the file's
// start). The cluster in progress is written out first when this block
// starts a new one.
func (m *mkvWriter) writeBlock(track int, ms int64, key, video bool, dur int64, data []byte) error {
	rel := ms - m.clusterTC
	switch {
	case !m.clusterOn:
	case video && key && m.clusterVideo, // keyframes start clusters
		rel >= clusterMaxMs,
		rel < -1<<15 || rel >= 1<<15:
		if err := m.flushCluster(); err != nil {
			return err
		}
	}
	if !m.clusterOn {
		m.clusterOn = true
		m.clusterTC = ms
		m.clusterPos = m.off - m.segData
		m.cluster = appendUint(m.cluster[:clusterHeadRoom], idTimecode, uint64(max(ms, 0)))
		if !m.hasVideo {
			m.cues = append(m.cues, cue{ms: ms, track: track, pos: m.clusterPos})
		}
	}
	if video && key && !m.clusterVideo {
		m.cues = append(m.cues, cue{ms: ms, track: track, pos: m.clusterPos})
	}
	m.clusterVideo = m.clusterVideo || video
	m.cluster = appendSimpleBlock(m.cluster, track, int16(ms-m.clusterTC), key, data)
	m.endMs = max(m.endMs, ms+dur)
	return nil
}

// flushCluster writes the cluster in progress, if any, with a known size.
func (m *mkvWriter) flushCluster() error {
	if !m.clusterOn {
		return nil
	}
	m.clusterOn, m.clusterVideo = false, false
	body := len(m.cluster) - clusterHeadRoom
	l := vintLen(uint64(body))
	start := clusterHeadRoom - 4 - l
	h := m.cluster[start:clusterHeadRoom]
	binary.BigEndian.PutUint32(h, idCluster)
	putVint(h[4:], uint64(body))
	err := m.write(m.cluster[start:])
	m.cluster = m.cluster[:clusterHeadRoom]
	if err == nil && m.onFlush != nil {
		m.onFlush(m.off)
	}
	return err
}

// finish writes the last cluster and the Cues, then patches SeekHead,
// Duration and the Segment size when the output supports WriteAt.
func (m *mkvWriter) finish() error {
	if err := m.flushCluster(); err != nil {
		return err
	}
	cuesPos := m.off - m.segData
	if len(m.cues) > 0 {
		b := appendMaster(nil, idCues, func(b []byte) []byte {
			for _, c := range m.cues {
				b = appendMaster(b, idCuePoint, func(b []byte) []byte {
					b = appendUint(b, idCueTime, uint64(max(c.ms, 0)))
					return appendMaster(b, idCueTrackPositions, func(b []byte) []byte {
						b = appendUint(b, idCueTrack, uint64(c.track))
						return appendUint(b, idCueClusterPos, uint64(c.pos))
					})
				})
			}
			return b
		})
		if err := m.write(b); err != nil {
			return err
		}
	}
	wa, ok := m.w.(io.WriterAt)
	if !ok {
		return nil
	}
	seek := appendMaster(nil, idSeekHead, func(b []byte) []byte {
		b = appendSeek(b, idInfo, m.infoPos)
		b = appendSeek(b, idTracks, m.trackPos)
		if len(m.cues) > 0 {
			b = appendSeek(b, idCues, cuesPos)
		}
		return b
	})
	seek = appendVoid(seek, seekHeadRoom-len(seek))
	dur := appendFloat(nil, idDuration, float64(m.endMs))
	var size [8]byte
	putVint(size[:], uint64(m.off-m.segData))
	for _, p := range []struct {
		b  []byte
		at int64
	}{{seek, m.seekAt}, {dur, m.durAt}, {size[:], m.segData - 8}} {
		if _, err := wa.WriteAt(p.b, p.at); err != nil {
			return fmt.Errorf("recorder: finish media file: %w", err)
		}
	}
	return nil
}

func appendSeek(b []byte, id uint32, pos int64) []byte {
	return appendMaster(b, idSeek, func(b []byte) []byte {
		b = appendBinary(b, idSeekID, appendID(nil, id))
		return appendUintN(b, idSeekPosition, uint64(pos), 8)
	})
}
