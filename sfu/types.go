package sfu

import (
	"crypto/rand"
	"encoding/base32"
	"errors"

	"github.com/pion/webrtc/v4"
)

// Sentinel errors callers branch on.
var (
	ErrRoomClosed    = errors.New("sfu: room closed")
	ErrTrackNotFound = errors.New("sfu: track not found")
	ErrNoPublisher   = errors.New("sfu: participant cannot publish")
	ErrNoSubscriber  = errors.New("sfu: participant cannot subscribe")
	ErrBadSDP        = errors.New("sfu: bad session description")
	ErrClosed        = errors.New("sfu: closed")
	ErrNotPublishing = errors.New("sfu: participant publishes no tracks")
)

// TrackInfo describes a published track.
type TrackInfo struct {
	ID            string              // unique in the room; the subscriber's track id
	ParticipantID string              // publisher; the subscriber's stream id
	Kind          webrtc.RTPCodecType // audio or video
	MimeType      string
	// PublisherTrackID is the track id in the publisher's own SDP (msid), so
	// that a publisher can refer to its tracks by the id it knows.
	PublisherTrackID string
	Muted            bool
	// Source is what the track shows: SourceCamera, SourceScreen,
	// SourceMicrophone, or "" when the publisher did not say.
	Source string
}

// Track sources a publisher may declare.
const (
	SourceCamera     = "camera"
	SourceScreen     = "screen"
	SourceMicrophone = "microphone"
)

// ParticipantInfo describes a room member.
type ParticipantInfo struct {
	ID     string
	Name   string
	Tracks []TrackInfo
}

// Target names one of a participant's two PeerConnections.
type Target string

// The two PeerConnections of a participant.
const (
	TargetPublisher  Target = "publisher"
	TargetSubscriber Target = "subscriber"
)

// Listener receives a participant's events. Methods are called from SFU
// goroutines, sometimes with room state locked: they must not block and must
// not call back into the room synchronously (post to your own loop instead).
type Listener interface {
	ParticipantJoined(ParticipantInfo)
	ParticipantLeft(ParticipantInfo)
	TrackPublished(TrackInfo)
	TrackUnpublished(TrackInfo)
	TrackMuted(TrackInfo)
	// SubscriberNegotiationNeeded asks for a new server offer on the
	// subscriber PeerConnection.
	SubscriberNegotiationNeeded()
	// ConnectionFailed reports that a PeerConnection failed or closed.
	ConnectionFailed(Target)
	// LayerChanged reports the simulcast layer now forwarded to this
	// participant for a track (-1: none, paused) and why.
	LayerChanged(trackID string, layer int, reason string)
	// PublisherLayers asks this participant, as a publisher, to send only
	// the simulcast layers marked active of one of its tracks (nobody
	// receives the others).
	PublisherLayers(track TrackInfo, active []bool)
	// DataRejected reports that a data message this participant sent was
	// refused (ErrDataNotPermitted, ErrDataTooLarge, ErrDataRate,
	// ErrDataMalformed, ErrDataUnknownRecipient); at most once a second per
	// reason. Called from the data channel's goroutine.
	DataRejected(err error)
}

// NopListener ignores every event; embed it to implement only some.
type NopListener struct{}

func (NopListener) ParticipantJoined(ParticipantInfo) {}
func (NopListener) ParticipantLeft(ParticipantInfo)   {}
func (NopListener) TrackPublished(TrackInfo)          {}
func (NopListener) TrackUnpublished(TrackInfo)        {}
func (NopListener) TrackMuted(TrackInfo)              {}
func (NopListener) SubscriberNegotiationNeeded()      {}
func (NopListener) ConnectionFailed(Target)           {}
func (NopListener) LayerChanged(string, int, string)  {}
func (NopListener) PublisherLayers(TrackInfo, []bool) {}
func (NopListener) DataRejected(error)                {}

func newID(prefix string) string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return prefix + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])
}
