package webhook

// Event names, sent in the "event" JSON field and the X-Chorus-Event header.
const (
	EventRoomStarted       = "room_started"
	EventRoomFinished      = "room_finished"
	EventParticipantJoined = "participant_joined"
	EventParticipantLeft   = "participant_left"
	EventTrackPublished    = "track_published"
	EventTrackUnpublished  = "track_unpublished"
	EventRecordingStarted  = "recording_started"
	EventRecordingFinished = "recording_finished"
)

// Event is the JSON body of a webhook request.
type Event struct {
	// ID uniquely identifies the event. The Notifier fills it in when it is
	// empty. It is also sent as the X-Chorus-Delivery header.
	ID string `json:"id"`
	// Event is one of the Event* constants.
	Event string `json:"event"`
	// CreatedAt is when the event happened, in Unix seconds. The Notifier
	// fills it in from its clock when it is zero.
	CreatedAt int64 `json:"created_at"`
	// Room is the name of the room the event belongs to, if any.
	Room string `json:"room,omitempty"`

	Participant *ParticipantInfo `json:"participant,omitempty"`
	Track       *TrackInfo       `json:"track,omitempty"`
	Recording   *RecordingInfo   `json:"recording,omitempty"`
}

// ParticipantInfo describes the participant an event is about.
type ParticipantInfo struct {
	ID       string `json:"id,omitempty"`
	Identity string `json:"identity"`
	Name     string `json:"name,omitempty"`
}

// TrackInfo describes the track an event is about.
type TrackInfo struct {
	ID       string `json:"id"`
	Kind     string `json:"kind,omitempty"`   // "audio" or "video"
	Source   string `json:"source,omitempty"` // e.g. "camera", "microphone", "screen_share"
	MimeType string `json:"mime_type,omitempty"`
}

// RecordingInfo describes the recording an event is about.
type RecordingInfo struct {
	ID          string `json:"id"`
	Room        string `json:"room,omitempty"`
	Participant string `json:"participant,omitempty"`
	File        string `json:"file,omitempty"`
	Bytes       int64  `json:"bytes,omitempty"`
	DurationMs  int64  `json:"duration_ms,omitempty"`
	State       string `json:"state,omitempty"`
}
