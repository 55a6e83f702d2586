package store

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Errors a Controller wraps (with %w) so that the HTTP API answers with the
// right status, and the error an auth function wraps to answer 403.
var (
	ErrUnknownRoom        = errors.New("unknown room")        // 404
	ErrUnknownParticipant = errors.New("unknown participant") // 404
	ErrAlreadyRecording   = errors.New("already recording")   // 409
	ErrNotRecording       = errors.New("not recording")       // 409
	ErrBadRequest         = errors.New("bad request")         // 400
	ErrUnavailable        = errors.New("unavailable")         // 503: shutting down
	ErrForbidden          = errors.New("forbidden")           // 403 from auth
)

// Controller starts and stops recordings; the server implements it over
// the SFU and the recorder.
type Controller interface {
	// StartRecording starts recording participant (an ID or a name) of
	// room, or every participant of room if participant is empty, and
	// returns the IDs of the participants recorded now (their files appear
	// in the listing once their media arrives).
	StartRecording(ctx context.Context, room, participant string) ([]string, error)
	// StopRecording stops the recordings of participant of room, or every
	// recording of room if participant is empty.
	StopRecording(ctx context.Context, room, participant string) error
}

const (
	maxBodyBytes = 64 << 10 // request body limit
	maxNameLen   = 256      // room and participant in requests
	jsonType     = "application/json; charset=utf-8"
)

// Handler serves the recordings HTTP API under /api/recordings (mount it on
// both "/api/recordings" and "/api/recordings/"). auth, if not nil, is
// called first on every request: an error answers 401, or 403 if it wraps
// ErrForbidden. A nil ctrl answers 501 to start and stop requests.
func (s *Store) Handler(ctrl Controller, auth func(*http.Request) error) http.Handler {
	a := &api{s: s, ctrl: ctrl, auth: auth, log: s.log, mux: http.NewServeMux()}
	m := a.mux
	m.HandleFunc("GET /api/recordings", a.list)
	m.HandleFunc("POST /api/recordings", a.start)
	m.HandleFunc("POST /api/recordings/stop", a.stop)
	m.HandleFunc("GET /api/recordings/{id}", a.media)
	m.HandleFunc("DELETE /api/recordings/{id}", a.delete)
	m.HandleFunc("GET /api/recordings/{id}/chat", a.chat)
	m.HandleFunc("GET /api/recordings/{id}/meta", a.meta)
	// Other methods on known paths, and unknown paths: JSON errors rather
	// than the ServeMux's plain text.
	m.HandleFunc("/api/recordings", methodNotAllowed("GET, HEAD, POST"))
	m.HandleFunc("/api/recordings/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "stop" {
			methodNotAllowed("POST")(w, r)
			return
		}
		methodNotAllowed("GET, HEAD, DELETE")(w, r)
	})
	m.HandleFunc("/api/recordings/{id}/chat", methodNotAllowed("GET, HEAD"))
	m.HandleFunc("/api/recordings/{id}/meta", methodNotAllowed("GET, HEAD"))
	m.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
	})
	return a
}

type api struct {
	s    *Store
	ctrl Controller
	auth func(*http.Request) error
	log  *slog.Logger
	mux  *http.ServeMux
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if a.auth != nil {
		if err := a.auth(r); err != nil {
			a.log.Debug("store: api request refused", "method", r.Method, "path", r.URL.Path, "err", err)
			if errors.Is(err, ErrForbidden) {
				writeError(w, http.StatusForbidden, "forbidden", "forbidden")
			} else {
				writeError(w, http.StatusUnauthorized, "unauthorized", "authentication required")
			}
			return
		}
	}
	a.mux.ServeHTTP(w, r)
}

// recordingJSON is a recording in API answers.
type recordingJSON struct {
	ID              string      `json:"id"`
	Room            string      `json:"room"`
	Participant     string      `json:"participant,omitempty"`
	ParticipantName string      `json:"participantName,omitempty"`
	Tracks          []TrackMeta `json:"tracks"`
	Start           string      `json:"start,omitempty"`
	End             string      `json:"end,omitempty"`
	Duration        float64     `json:"duration"` // seconds
	Size            int64       `json:"size"`     // bytes
	State           string      `json:"state"`
	Chat            bool        `json:"chat"`
	ContentType     string      `json:"contentType,omitempty"`
	Error           string      `json:"error,omitempty"`
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func toJSON(in Info) recordingJSON {
	return recordingJSON{ID: in.ID, Room: in.Room, Participant: in.Participant,
		ParticipantName: in.ParticipantName, Tracks: in.Tracks, Start: rfc3339(in.Start),
		End: rfc3339(in.End), Duration: in.Duration.Seconds(), Size: in.Size, State: in.State,
		Chat: in.Chat, ContentType: in.ContentType, Error: in.Error}
}

func (a *api) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	infos, err := a.s.ListFilter(Filter{Room: q.Get("room"), Participant: q.Get("participant")})
	if err != nil {
		a.storeError(w, err)
		return
	}
	out := struct {
		Recordings []recordingJSON `json:"recordings"`
	}{Recordings: make([]recordingJSON, 0, len(infos))}
	for _, in := range infos {
		out.Recordings = append(out.Recordings, toJSON(in))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) media(w http.ResponseWriter, r *http.Request) {
	a.serve(w, r, a.s.Open)
}

func (a *api) chat(w http.ResponseWriter, r *http.Request) {
	a.serve(w, r, a.s.OpenChat)
}

func (a *api) serve(w http.ResponseWriter, r *http.Request, open func(string) (*Download, error)) {
	d, err := open(r.PathValue("id"))
	if err != nil {
		a.storeError(w, err)
		return
	}
	defer d.Close()
	h := w.Header()
	h.Set("Content-Type", d.ContentType)
	// The name is "<ID>.<ext>" with a valid ID: nothing to escape, but let
	// mime quote it anyway.
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": d.Name}))
	h.Set("Cache-Control", "private, no-cache")
	if d.ETag != "" {
		h.Set("ETag", d.ETag)
	}
	if rh := r.Header.Get("Range"); rh != "" {
		if fixed := fixEmptySuffixRanges(rh, d.Size); fixed != rh {
			r = r.Clone(r.Context())
			r.Header.Set("Range", fixed)
		}
	}
	modTime := d.ModTime
	if d.ETag == "" {
		// Still being written: no validator, so no Last-Modified, no 304
		// and no If-Range match on a file that keeps changing.
		modTime = time.Time{}
	}
	http.ServeContent(&contentWriter{ResponseWriter: w}, r, d.Name, modTime, d)
}

// fixEmptySuffixRanges rewrites the suffix ranges of length 0 ("-0") of a
// Range header, which RFC 9110 calls unsatisfiable but http.ServeContent
// answers with an empty 206 and a malformed Content-Range, into a range
// that starts at the end of the content, which ServeContent treats as
// unsatisfiable: ignored beside others, 416 alone.
func fixEmptySuffixRanges(h string, size int64) string {
	specs, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return h
	}
	parts := strings.Split(specs, ",")
	changed := false
	for i, p := range parts {
		suffix, ok := strings.CutPrefix(strings.TrimSpace(p), "-")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(suffix), 10, 64); err == nil && n == 0 {
			parts[i] = strconv.FormatInt(size, 10) + "-"
			changed = true
		}
	}
	if !changed {
		return h
	}
	return "bytes=" + strings.Join(parts, ",")
}

func (a *api) meta(w http.ResponseWriter, r *http.Request) {
	m, err := a.s.Meta(r.PathValue("id"))
	if err != nil {
		a.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func (a *api) delete(w http.ResponseWriter, r *http.Request) {
	if err := a.s.Delete(r.PathValue("id")); err != nil {
		a.storeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// controlRequest is the body of start and stop requests.
type controlRequest struct {
	Room        string `json:"room"`
	Participant string `json:"participant,omitempty"`
}

func (a *api) start(w http.ResponseWriter, r *http.Request) {
	req, ok := a.controlRequest(w, r)
	if !ok {
		return
	}
	ids, err := a.ctrl.StartRecording(r.Context(), req.Room, req.Participant)
	if err != nil {
		a.controlError(w, r, err)
		return
	}
	if ids == nil {
		ids = []string{}
	}
	writeJSON(w, http.StatusCreated, struct {
		Room         string   `json:"room"`
		Participant  string   `json:"participant,omitempty"`
		Participants []string `json:"participants"`
	}{req.Room, req.Participant, ids})
}

func (a *api) stop(w http.ResponseWriter, r *http.Request) {
	req, ok := a.controlRequest(w, r)
	if !ok {
		return
	}
	if err := a.ctrl.StopRecording(r.Context(), req.Room, req.Participant); err != nil {
		a.controlError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// controlRequest decodes a start or stop request, or answers an error.
func (a *api) controlRequest(w http.ResponseWriter, r *http.Request) (controlRequest, bool) {
	var req controlRequest
	if a.ctrl == nil {
		writeError(w, http.StatusNotImplemented, "not_implemented", "recording control is not available")
		return req, false
	}
	// Requiring JSON also keeps a cross-site HTML form from posting here.
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "the body must be application/json")
		return req, false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(&req)
	if err == nil && dec.Decode(new(json.RawMessage)) != io.EOF {
		err = errors.New("data after the JSON object")
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", "request body too large")
		return req, false
	case err != nil:
		writeError(w, http.StatusBadRequest, "bad_request", "invalid JSON body: "+err.Error())
		return req, false
	case req.Room == "":
		writeError(w, http.StatusBadRequest, "bad_request", "room is required")
		return req, false
	case len(req.Room) > maxNameLen || len(req.Participant) > maxNameLen:
		writeError(w, http.StatusBadRequest, "bad_request", "room or participant too long")
		return req, false
	}
	return req, true
}

func (a *api) controlError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrBadRequest):
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
	case errors.Is(err, ErrUnknownRoom):
		writeError(w, http.StatusNotFound, "unknown_room", err.Error())
	case errors.Is(err, ErrUnknownParticipant):
		writeError(w, http.StatusNotFound, "unknown_participant", err.Error())
	case errors.Is(err, ErrAlreadyRecording):
		writeError(w, http.StatusConflict, "already_recording", err.Error())
	case errors.Is(err, ErrNotRecording):
		writeError(w, http.StatusConflict, "not_recording", err.Error())
	case errors.Is(err, ErrUnavailable):
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
	default:
		a.log.Error("store: recording control failed", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error")
	}
}

func (a *api) storeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrBadID):
		writeError(w, http.StatusBadRequest, "bad_id", "invalid recording id")
	case errors.Is(err, ErrCorrupt):
		writeError(w, http.StatusNotFound, "corrupt", "recording metadata is invalid")
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "recording or file not found")
	case errors.Is(err, ErrInProgress):
		writeError(w, http.StatusConflict, "in_progress", "recording in progress")
	default:
		a.log.Error("store: api", "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error")
	}
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed")
	}
}

// errorJSON is the body of every error answer.
type errorJSON struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", jsonType)
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorJSON{Error: msg, Code: code})
}

// contentWriter turns the plain text errors of http.ServeContent (bad
// range, failed precondition) into JSON errors.
type contentWriter struct {
	http.ResponseWriter
	failed bool
}

func (c *contentWriter) WriteHeader(status int) {
	if status < 400 || c.failed {
		c.ResponseWriter.WriteHeader(status)
		return
	}
	c.failed = true
	h := c.Header()
	for _, k := range []string{"Content-Length", "Content-Disposition", "ETag", "Last-Modified"} {
		h.Del(k)
	}
	code, msg := "error", http.StatusText(status)
	switch status {
	case http.StatusRequestedRangeNotSatisfiable:
		code, msg = "range_not_satisfiable", "invalid or unsatisfiable range"
	case http.StatusPreconditionFailed:
		code, msg = "precondition_failed", "precondition failed"
	}
	writeError(c.ResponseWriter, status, code, msg)
}

func (c *contentWriter) Write(p []byte) (int, error) {
	if c.failed {
		return len(p), nil // the JSON body is already written
	}
	return c.ResponseWriter.Write(p)
}
