// Package recorder writes server-side recordings. A recorder is just
// another subscriber: the SFU feeds it the packets it would send to a
// subscriber's down track, already rewritten into one continuous stream per
// track, and the recorder writes one WebM file per participant (Matroska
// .mkv when a track is H264) with a JSON metadata file next to it (package
// store lists, serves and deletes them).
//
// # Use
//
//	rec, err := recorder.New(recorder.Options{Dir: dir, Room: room, Participant: id, Logger: log})
//	tr, err := rec.AddTrack(recorder.TrackOptions{ID: trackID, Codec: codec, RequestKeyframe: askPublisher})
//	downTrack.Bind(tr.BindContext()) // or write to tr (a webrtc.TrackLocalWriter) directly
//	tr.SenderReport(ntp, rtpTS)       // whenever the publisher's SR arrives, in tr's timestamps
//	rec.RemoveTrack(tr)               // the track was unpublished
//	err = rec.Close()                 // writes what is queued, finishes the file
//
// WriteRTP never blocks: it copies the packet into a bounded per-track
// queue and returns; when the queue is full (the disk is slow) the packet is
// dropped, counted in Stats and logged at most every 5 s. One goroutine per
// participant does the rest: reordering (a missing packet is waited for
// 150 ms after the next one arrived), depacketizing (VP8 RFC 7741, VP9 RFC
// 9628 with spatial layers as superframes, H264 RFC 6184 single NAL, STAP-A
// and FU-A into length-prefixed NAL units, Opus), timing and writing.
//
// # Tracks and files
//
// Matroska lists the tracks in a header before any media. Add the tracks
// right after New: the header is written once every added track has media
// (video: a keyframe) and a sender report, or 2 s (Options.StartWait) after
// the first media, whichever comes first; media is buffered meanwhile.
// A track whose media starts after the header ends the file and starts a
// new part: a new recording ID with its own files holding all current
// tracks (Recordings lists the parts). Video continuing into a new part
// waits for its next keyframe. A track that replaces a removed track of
// the same codec (a camera turned off and on) takes its place in the same
// file without a new part.
//
// # Loss and keyframes
//
// Audio frames are independent: a lost one is simply missing. After an
// unrecoverable video loss, frames are not written until the next keyframe,
// and RequestKeyframe is called (at most every 500 ms while waiting). Loss
// of packets between two frames whose picture IDs follow each other (VP8,
// VP9) needs no keyframe: only padding was lost. Video always starts at a
// keyframe.
//
// # Time and lip sync
//
// Timecodes are milliseconds from the file's start. A track's RTP
// timestamps (extended across wrap-around) are mapped to capture time:
// before any sender report from the arrival time of its first packet; the
// participant's first sender report then fixes the offset between the
// publisher's NTP clock and ours (without moving that track), and every
// track follows its own reports through that offset, so audio and video
// line up as the publisher captured them. A report that would move a track
// by more than 1 s is ignored as inconsistent. A track's timecodes never go
// backwards: when a report moves a track back, its next frames are written
// 1 ms apart until it catches up. Frames of all tracks are written in
// capture order, a track that queued nothing for 500 ms is not waited for.
//
// # Crash safety
//
// The file is written progressively: a Segment of unknown size, then each
// cluster (at most 1 s, and a new one at each video keyframe) with a single
// write as soon as it is complete, or after 1 s without media. A process
// killed at any time leaves a file that plays up to about its last second.
// Close adds the Cues and patches the SeekHead, the Duration and the
// Segment size. File names are generated IDs ("rec_" and 16 base32
// characters), never client-provided strings.
package recorder
