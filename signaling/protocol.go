// Package signaling implements the Chorus WebSocket protocol (docs/protocol.md)
// and the WHIP/WHEP endpoints. It translates messages into calls of package
// sfu and sfu events into messages; it owns each connection's negotiation
// state machine.
package signaling

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/chat"
)

// Message types. Client to server: join, offer (publisher), answer
// (subscriber), candidate, mute, trackSettings, startRecording,
// stopRecording, leave, ping. Server to client: joined, answer (publisher),
// offer (subscriber), candidate, participantJoined, participantLeft,
// trackPublished, trackUnpublished, trackMuted, layerChanged,
// publisherLayers, recording, recordingStarted, recordingStopped, error,
// pong.
const (
	TypeJoin              = "join"
	TypeJoined            = "joined"
	TypeOffer             = "offer"
	TypeAnswer            = "answer"
	TypeCandidate         = "candidate"
	TypeMute              = "mute"
	TypeLeave             = "leave"
	TypePing              = "ping"
	TypePong              = "pong"
	TypeParticipantJoined = "participantJoined"
	TypeParticipantLeft   = "participantLeft"
	TypeTrackPublished    = "trackPublished"
	TypeTrackUnpublished  = "trackUnpublished"
	TypeTrackMuted        = "trackMuted"
	TypeTrackSettings     = "trackSettings"
	TypeLayerChanged      = "layerChanged"
	TypePublisherLayers   = "publisherLayers"
	TypeError             = "error"
	// Recording: control requests and their replies, and the notice of who
	// in the room is being recorded.
	TypeStartRecording   = "startRecording"
	TypeStopRecording    = "stopRecording"
	TypeRecordingStarted = "recordingStarted"
	TypeRecordingStopped = "recordingStopped"
	TypeRecording        = "recording"
	// Chat: TypeChat (client: text, to?; server: messages), TypeReaction
	// (client: reaction), TypeChatHistory (client: after?, limit?; server:
	// messages, more, chat), TypeChatNotify (server: chat.latest, and after
	// joined chat.oldest too: pull what is new), TypeChatSent (server: the
	// sender's own message with its seq).
	TypeChat        = "chat"
	TypeReaction    = "reaction"
	TypeChatHistory = "chatHistory"
	TypeChatNotify  = "chatNotify"
	TypeChatSent    = "chatSent"
	// TypeReconnect (server to client): the server is draining; the client
	// should leave and join again (another node will take it).
	TypeReconnect = "reconnect"
)

// Error codes carried by error messages. They are stable: clients branch on them.
const (
	CodeBadJSON          = "bad_json"
	CodeUnknownType      = "unknown_type"
	CodeTooLarge         = "too_large"
	CodeNotJoined        = "not_joined"
	CodeAlreadyJoined    = "already_joined"
	CodeBadRequest       = "bad_request"
	CodeBadSDP           = "bad_sdp"
	CodeConnectionFailed = "connection_failed"
	CodeInternal         = "internal"
	// Recording requests.
	CodeNotPermitted     = "not_permitted"     // clients may not control recording here
	CodeNotFound         = "not_found"         // no such participant (or room) to record
	CodeAlreadyRecording = "already_recording" // what was asked for is recorded already
	CodeNotRecording     = "not_recording"     // what was asked to stop is not recorded
	CodeUnauthorized     = "unauthorized"      // missing, malformed, expired or forged access token
	CodeLimit            = "limit_exceeded"    // a room, participant or track limit
	CodeRateLimited      = "rate_limited"      // messages faster than the connection's rate limit
	CodeUnavailable      = "unavailable"       // the server is draining
	CodeRemoved          = "removed"           // an operator removed the participant
)

// Targets of offer, answer and candidate messages.
const (
	TargetPublisher  = "publisher"
	TargetSubscriber = "subscriber"
	// TargetData marks an error about one app data message the client sent
	// (it was dropped; the session goes on).
	TargetData = "data"
)

// Limits of the protocol.
const (
	MaxMessageSize = 256 << 10 // bytes of one WebSocket message
	MaxRoomLen     = 128
	MaxNameLen     = 64
	// MaxParticipantIDLen bounds the participantId of recording requests.
	MaxParticipantIDLen = 64
)

// Message is every protocol message; Type says which fields are used.
type Message struct {
	Type string `json:"type"`
	// ID is an optional client-chosen request id, echoed in the reply or error.
	ID        string                   `json:"id,omitempty"`
	Room      string                   `json:"room,omitempty"`
	Name      string                   `json:"name,omitempty"`
	Target    string                   `json:"target,omitempty"`
	SDP       string                   `json:"sdp,omitempty"`
	Candidate *webrtc.ICECandidateInit `json:"candidate,omitempty"`
	TrackID   string                   `json:"trackId,omitempty"`
	Muted     *bool                    `json:"muted,omitempty"`
	MaxLayer  *int                     `json:"maxLayer,omitempty"`
	MaxHeight *int                     `json:"maxHeight,omitempty"`
	Paused    *bool                    `json:"paused,omitempty"`
	Layer     *int                     `json:"layer,omitempty"`
	Reason    string                   `json:"reason,omitempty"`
	Active    []bool                   `json:"active,omitempty"`
	// Sources, on a publisher offer, says what each track shows, by the
	// client's track id: "camera", "screen" or "microphone".
	Sources      map[string]string `json:"sources,omitempty"`
	Participant  *Participant      `json:"participant,omitempty"`
	Participants []Participant     `json:"participants,omitempty"`
	Track        *Track            `json:"track,omitempty"`
	Code         string            `json:"code,omitempty"`
	Message      string            `json:"message,omitempty"`
	// ParticipantID, on startRecording and stopRecording, names the
	// participant to record or stop recording; empty: the whole room.
	ParticipantID string `json:"participantId,omitempty"`
	// Recorded lists participant IDs: on a recording notice, everyone in
	// the room being recorded now (empty: nobody); on recordingStarted,
	// the participants whose recording the request started.
	Recorded []string `json:"recorded,omitempty"`
	// CanRecord, on joined, says that the client may send startRecording
	// and stopRecording.
	CanRecord bool `json:"canRecord,omitempty"`
	// Token, on join, is the client's access token (it may instead come
	// with the WebSocket URL as ?access_token= or an Authorization header).
	Token string `json:"token,omitempty"`
	// ICEServers, on joined, are the STUN/TURN servers the client should
	// configure its connections with (TURN credentials included).
	ICEServers []ICEServer `json:"iceServers,omitempty"`
	// Identity, on joined, is the identity of the client's access token.
	Identity string `json:"identity,omitempty"`
	// CanPublish and CanSubscribe, on joined, are the client's grants
	// (omitted with no tokens: everything is allowed).
	CanPublish   *bool `json:"canPublish,omitempty"`
	CanSubscribe *bool `json:"canSubscribe,omitempty"`
	// Data, on join, asks for the app data channels on the subscriber
	// connection (see docs/protocol.md, "App data"). CanData, on joined,
	// says whether the client may send on them (omitted with no tokens).
	Data    bool  `json:"data,omitempty"`
	CanData *bool `json:"canData,omitempty"`

	// Chat fields (see TypeChat).
	Text     string         `json:"text,omitempty"`
	To       string         `json:"to,omitempty"`
	Reaction string         `json:"reaction,omitempty"`
	After    *uint64        `json:"after,omitempty"`
	Limit    int            `json:"limit,omitempty"`
	More     bool           `json:"more,omitempty"`
	Messages []chat.Message `json:"messages,omitempty"`
	Chat     *ChatInfo      `json:"chat,omitempty"`
}

// ChatInfo is the room chat history's range: messages Oldest..Latest can be
// pulled (0: none stored yet).
type ChatInfo struct {
	Oldest uint64 `json:"oldest"`
	Latest uint64 `json:"latest"`
	// Epoch identifies the room's history (see chat.Room.Epoch): sequence
	// numbers of another epoch mean nothing in this one.
	Epoch string `json:"epoch,omitempty"`
}

// Participant describes a room member.
type Participant struct {
	ID     string  `json:"id"`
	Name   string  `json:"name"`
	Tracks []Track `json:"tracks"`
}

// Track describes a published track. Subscribers receive it with track id
// ID in a stream whose id is ParticipantID.
type Track struct {
	ID            string `json:"id"`
	ParticipantID string `json:"participantId"`
	Kind          string `json:"kind"`  // "audio" or "video"
	Codec         string `json:"codec"` // MIME type, e.g. "video/VP8"
	Muted         bool   `json:"muted"`
	Source        string `json:"source,omitempty"` // "camera", "screen", "microphone" or empty
	// PublisherTrackID is the id the publisher gave the track in its SDP.
	PublisherTrackID string `json:"publisherTrackId,omitempty"`
}

// ProtocolError is an error reported to one client.
type ProtocolError struct {
	Code string
	Msg  string
}

func (e *ProtocolError) Error() string { return e.Code + ": " + e.Msg }

func protoErr(code, format string, args ...any) *ProtocolError {
	return &ProtocolError{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Decode parses and validates one client message. Errors are
// *ProtocolError values with a stable code.
func Decode(data []byte) (Message, error) {
	var m Message
	if len(data) > MaxMessageSize {
		return m, protoErr(CodeTooLarge, "message of %d bytes exceeds %d", len(data), MaxMessageSize)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return m, protoErr(CodeBadJSON, "malformed JSON at byte %d", se.Offset)
		}
		return m, protoErr(CodeBadJSON, "malformed message: %v", err)
	}
	switch m.Type {
	case "":
		return m, protoErr(CodeBadRequest, "missing message type")
	case TypeJoin:
		if m.Room == "" || len(m.Room) > MaxRoomLen {
			return m, protoErr(CodeBadRequest, "room must be 1 to %d bytes", MaxRoomLen)
		}
		if len(m.Name) > MaxNameLen {
			return m, protoErr(CodeBadRequest, "name must be at most %d bytes", MaxNameLen)
		}
		if !printable(m.Room) || !printable(m.Name) {
			return m, protoErr(CodeBadRequest, "room and name must be printable text")
		}
	case TypeOffer, TypeAnswer:
		if m.SDP == "" {
			return m, protoErr(CodeBadSDP, "%s without sdp", m.Type)
		}
		if err := checkTarget(m); err != nil {
			return m, err
		}
		if len(m.Sources) > 64 {
			return m, protoErr(CodeBadRequest, "at most 64 sources")
		}
	case TypeCandidate:
		if m.Candidate == nil {
			return m, protoErr(CodeBadRequest, "candidate message without candidate")
		}
		if err := checkTarget(m); err != nil {
			return m, err
		}
	case TypeMute:
		if m.TrackID == "" || m.Muted == nil {
			return m, protoErr(CodeBadRequest, "mute needs trackId and muted")
		}
	case TypeTrackSettings:
		if m.TrackID == "" || (m.MaxLayer == nil && m.MaxHeight == nil && m.Paused == nil) {
			return m, protoErr(CodeBadRequest, "trackSettings needs trackId and maxLayer, maxHeight or paused")
		}
		if m.MaxLayer != nil && (*m.MaxLayer < 0 || *m.MaxLayer > 2) {
			return m, protoErr(CodeBadRequest, "maxLayer must be 0, 1 or 2")
		}
		if m.MaxHeight != nil && (*m.MaxHeight < 0 || *m.MaxHeight > 16384) {
			return m, protoErr(CodeBadRequest, "maxHeight must be between 0 (no limit) and 16384")
		}
	case TypeStartRecording, TypeStopRecording:
		if len(m.ParticipantID) > MaxParticipantIDLen || !printable(m.ParticipantID) {
			return m, protoErr(CodeBadRequest, "participantId must be printable text of at most %d bytes", MaxParticipantIDLen)
		}
	case TypeChat:
		if strings.TrimSpace(m.Text) == "" {
			return m, protoErr(CodeBadRequest, "chat needs text")
		}
		if len(m.To) > MaxParticipantIDLen {
			return m, protoErr(CodeBadRequest, "to must be a participant id")
		}
	case TypeReaction:
		if m.Reaction == "" || len(m.Reaction) > 64 {
			return m, protoErr(CodeBadRequest, "reaction must be 1 to 64 bytes")
		}
	case TypeChatHistory:
		if m.Limit < 0 {
			return m, protoErr(CodeBadRequest, "limit must not be negative")
		}
	case TypeLeave, TypePing:
	default:
		return m, protoErr(CodeUnknownType, "unknown message type %q", m.Type)
	}
	return m, nil
}

func checkTarget(m Message) error {
	if m.Target != TargetPublisher && m.Target != TargetSubscriber {
		return protoErr(CodeBadRequest, "target must be %q or %q", TargetPublisher, TargetSubscriber)
	}
	return nil
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xFFFD {
			return false
		}
	}
	return true
}
