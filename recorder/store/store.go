package store

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Errors of the store. They are wrapped with %w; test them with errors.Is.
var (
	// ErrNotFound: no such recording, or the requested file of it (media,
	// chat archive) does not exist or may not be served.
	ErrNotFound = errors.New("recording not found")
	// ErrBadID: the ID is not a valid recording ID (see ValidID).
	ErrBadID = errors.New("invalid recording id")
	// ErrInProgress: the recording is still being written.
	ErrInProgress = errors.New("recording in progress")
	// ErrCorrupt: the recording's metadata file cannot be read as valid
	// metadata (bad JSON, wrong ID, unknown state, file names outside the
	// recording, not a regular file).
	ErrCorrupt = errors.New("invalid recording metadata")
)

// maxMetaSize bounds the metadata files the store reads.
const maxMetaSize = 1 << 20

// Options configures a Store.
type Options struct {
	// MaxAge: Sweep deletes finished and failed recordings that ended longer
	// ago than this. 0 keeps them forever.
	MaxAge time.Duration
	// MaxTotalBytes: Sweep deletes the oldest finished and failed recordings
	// while all recordings together take more than this. 0: no limit.
	MaxTotalBytes int64
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// OnSweep, if set, is called by Run after each sweep with its result.
	OnSweep func(removed []string, err error)
}

// Store gives access to the recordings in one storage folder. Its methods
// are safe for concurrent use.
type Store struct {
	dir  string // absolute, symbolic links resolved
	opts Options
	log  *slog.Logger
	now  func() time.Time
	mu   sync.Mutex // serialises deletions (Delete, Sweep)
}

// Open opens the storage folder dir, creating it (mode 0750) if needed.
func Open(dir string, opts Options) (*Store, error) {
	if dir == "" {
		return nil, errors.New("store: no storage folder")
	}
	if opts.MaxAge < 0 || opts.MaxTotalBytes < 0 {
		return nil, errors.New("store: negative retention limit")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("store: create storage folder: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("store: storage folder: %w", err)
	}
	resolved, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("store: storage folder: %w", err)
	}
	root, err := os.OpenRoot(resolved)
	if err != nil {
		return nil, fmt.Errorf("store: open storage folder: %w", err)
	}
	_ = root.Close()
	s := &Store{dir: filepath.Clean(resolved), opts: opts, log: opts.Logger, now: opts.Now}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Dir is the storage folder (absolute, symbolic links resolved).
func (s *Store) Dir() string { return s.dir }

// Info describes one recording.
type Info struct {
	ID              string
	Room            string
	Participant     string // empty: a whole-room recording
	ParticipantName string
	Tracks          []TrackMeta
	Start           time.Time
	End             time.Time     // zero while recording
	Duration        time.Duration // End-Start, or Now-Start while recording
	Size            int64         // bytes of the media file and chat archive
	State           string        // StateRecording, StateFinished or StateFailed
	Chat            bool          // a chat archive is present
	Error           string        // why a failed recording failed
	ContentType     string        // of the media file; empty if there is none
}

// Filter selects recordings; empty fields match everything.
type Filter struct {
	Room        string
	Participant string // participant ID or name
}

func (f Filter) match(m Meta) bool {
	if f.Room != "" && m.Room != f.Room {
		return false
	}
	if f.Participant != "" && m.Participant != f.Participant && m.ParticipantName != f.Participant {
		return false
	}
	return true
}

// List returns every recording, newest first.
func (s *Store) List() ([]Info, error) { return s.ListFilter(Filter{}) }

// ListFilter returns the recordings f selects, newest first. Files that are
// not recordings are ignored; a metadata file that cannot be read is logged
// and skipped.
func (s *Store) ListFilter(f Filter) ([]Info, error) {
	root, err := s.openRoot()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	metas, err := s.loadAll(root)
	if err != nil {
		return nil, err
	}
	out := make([]Info, 0, len(metas))
	for _, m := range metas {
		if f.match(m) {
			out = append(out, s.info(root, m))
		}
	}
	slices.SortFunc(out, func(a, b Info) int {
		if c := b.Start.Compare(a.Start); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Get returns the recording id.
func (s *Store) Get(id string) (Info, error) {
	if !ValidID(id) {
		return Info{}, fmt.Errorf("store: %q: %w", id, ErrBadID)
	}
	root, err := s.openRoot()
	if err != nil {
		return Info{}, err
	}
	defer root.Close()
	m, err := s.readMeta(root, id)
	if err != nil {
		return Info{}, err
	}
	return s.info(root, m), nil
}

// Meta returns the validated metadata of recording id.
func (s *Store) Meta(id string) (Meta, error) {
	if !ValidID(id) {
		return Meta{}, fmt.Errorf("store: %q: %w", id, ErrBadID)
	}
	root, err := s.openRoot()
	if err != nil {
		return Meta{}, err
	}
	defer root.Close()
	return s.readMeta(root, id)
}

// Download is an open file of a recording. Reads and seeks are limited to
// the Size the file had when it was opened, so that a file still being
// written is served consistently. The caller closes it.
type Download struct {
	Name        string // file name, e.g. "<ID>.webm"
	ContentType string
	ModTime     time.Time
	Size        int64
	// ETag is a strong entity tag for a recording that is no longer being
	// written; empty while it is (its content still changes).
	ETag string

	f *os.File
	r *io.SectionReader
}

// Read implements io.Reader.
func (d *Download) Read(p []byte) (int, error) { return d.r.Read(p) }

// Seek implements io.Seeker.
func (d *Download) Seek(offset int64, whence int) (int64, error) { return d.r.Seek(offset, whence) }

// Close closes the file.
func (d *Download) Close() error { return d.f.Close() }

// Open opens the media file of recording id.
func (s *Store) Open(id string) (*Download, error) {
	return s.openFile(id, func(m Meta) (string, string) {
		ct, _ := mediaType(strings.TrimPrefix(m.File, m.ID))
		return m.File, ct
	})
}

// OpenChat opens the chat archive of recording id.
func (s *Store) OpenChat(id string) (*Download, error) {
	return s.openFile(id, func(m Meta) (string, string) { return m.Chat, ChatContentType })
}

func (s *Store) openFile(id string, pick func(Meta) (name, contentType string)) (*Download, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("store: %q: %w", id, ErrBadID)
	}
	root, err := s.openRoot()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	m, err := s.readMeta(root, id)
	if err != nil {
		return nil, err
	}
	name, ct := pick(m)
	if name == "" {
		return nil, fmt.Errorf("store: recording %s has no such file: %w", id, ErrNotFound)
	}
	f, fi, err := s.openRegular(root, name)
	if err != nil {
		return nil, err
	}
	d := &Download{Name: name, ContentType: ct, ModTime: fi.ModTime(), Size: fi.Size(),
		f: f, r: io.NewSectionReader(f, 0, fi.Size())}
	if m.State != StateRecording {
		d.ETag = fmt.Sprintf(`"%s-%x-%x"`, id, fi.Size(), fi.ModTime().UnixNano())
	}
	return d, nil
}

// Delete removes recording id: media file, chat archive and metadata. A
// recording still being written is not deleted (ErrInProgress). A recording
// whose metadata is invalid can be deleted; only the file names derived from
// its ID are removed then.
func (s *Store) Delete(id string) error {
	if !ValidID(id) {
		return fmt.Errorf("store: %q: %w", id, ErrBadID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	root, err := s.openRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	m, err := s.readMeta(root, id)
	switch {
	case errors.Is(err, ErrCorrupt):
		s.log.Warn("store: deleting recording with invalid metadata", "id", id, "err", err)
	case err != nil:
		return err
	case m.State == StateRecording:
		return fmt.Errorf("store: delete %s: %w", id, ErrInProgress)
	}
	if err := s.remove(root, id); err != nil {
		return err
	}
	s.log.Info("store: recording deleted", "id", id)
	return nil
}

// remove deletes the files of recording id, metadata last, so that a
// failure leaves a recording that can be deleted again.
func (s *Store) remove(root *os.Root, id string) error {
	var errs []error
	names := []string{id + chatSuffix}
	for _, suf := range mediaSuffixes() {
		names = append(names, id+suf)
	}
	for _, name := range names {
		if err := s.removeFile(root, name); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		errs = append(errs, s.removeFile(root, id+metaSuffix))
	}
	return errors.Join(errs...)
}

// removeFile removes name (a link itself, never its target); a missing
// file is not an error.
func (s *Store) removeFile(root *os.Root, name string) error {
	if _, err := s.path(name); err != nil {
		return err
	}
	if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: delete %s: %w", name, err)
	}
	return nil
}

func (s *Store) openRoot() (*os.Root, error) {
	root, err := os.OpenRoot(s.dir)
	if err != nil {
		return nil, fmt.Errorf("store: open storage folder: %w", err)
	}
	return root, nil
}

// openRegular opens name for reading if it is a regular file: symbolic
// links, even to files inside the folder, devices and pipes are refused.
// The file opened must be the one checked.
func (s *Store) openRegular(root *os.Root, name string) (*os.File, os.FileInfo, error) {
	if _, err := s.path(name); err != nil {
		return nil, nil, err
	}
	li, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("store: %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("store: %s: %w", name, err)
	}
	if !li.Mode().IsRegular() {
		s.log.Warn("store: refusing a file that is not a regular file", "name", name, "mode", li.Mode().String())
		return nil, nil, fmt.Errorf("store: %s is not a regular file: %w", name, ErrNotFound)
	}
	f, err := root.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("store: %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("store: %s: %w", name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("store: %s: %w", name, err)
	}
	if !os.SameFile(li, fi) || !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("store: %s changed while opening: %w", name, ErrNotFound)
	}
	return f, fi, nil
}

// readMeta reads and validates the metadata of recording id.
func (s *Store) readMeta(root *os.Root, id string) (Meta, error) {
	var m Meta
	f, _, err := s.openRegular(root, id+metaSuffix)
	if errors.Is(err, ErrNotFound) {
		if _, lerr := root.Lstat(id + metaSuffix); lerr == nil {
			// It exists but is not a regular file.
			return m, fmt.Errorf("store: metadata of %s: %w: %w", id, ErrCorrupt, err)
		}
		return m, fmt.Errorf("store: %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return m, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMetaSize+1))
	if err != nil {
		return m, fmt.Errorf("store: read metadata of %s: %w", id, err)
	}
	if len(b) > maxMetaSize {
		return m, fmt.Errorf("store: metadata of %s too large: %w", id, ErrCorrupt)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return Meta{}, fmt.Errorf("store: metadata of %s: %w: %w", id, ErrCorrupt, err)
	}
	if err := checkMeta(id, m); err != nil {
		return Meta{}, err
	}
	return m, nil
}

func checkMeta(id string, m Meta) error {
	switch {
	case m.ID != id:
		return fmt.Errorf("store: metadata of %s names recording %q: %w", id, m.ID, ErrCorrupt)
	case m.State != StateRecording && m.State != StateFinished && m.State != StateFailed:
		return fmt.Errorf("store: metadata of %s: unknown state %q: %w", id, m.State, ErrCorrupt)
	case m.File != "" && !mediaFileOK(id, m.File):
		return fmt.Errorf("store: metadata of %s: media file %q refused: %w", id, m.File, ErrCorrupt)
	case m.Chat != "" && !chatFileOK(id, m.Chat):
		return fmt.Errorf("store: metadata of %s: chat file %q refused: %w", id, m.Chat, ErrCorrupt)
	}
	return nil
}

// loadAll reads every valid metadata file of the folder.
func (s *Store) loadAll(root *os.Root) ([]Meta, error) {
	d, err := root.Open(".")
	if err != nil {
		return nil, fmt.Errorf("store: list storage folder: %w", err)
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return nil, fmt.Errorf("store: list storage folder: %w", err)
	}
	var out []Meta
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), metaSuffix)
		if !ok || !ValidID(id) {
			continue // not a recording's metadata
		}
		m, err := s.readMeta(root, id)
		switch {
		case errors.Is(err, ErrNotFound):
			// Deleted meanwhile.
		case err != nil:
			s.log.Warn("store: skipping recording", "id", id, "err", err)
		default:
			out = append(out, m)
		}
	}
	return out, nil
}

// fileSize is the size of name if it is a regular file.
func fileSize(root *os.Root, name string) (int64, bool) {
	if name == "" {
		return 0, false
	}
	fi, err := root.Lstat(name)
	if err != nil || !fi.Mode().IsRegular() {
		return 0, false
	}
	return fi.Size(), true
}

func (s *Store) info(root *os.Root, m Meta) Info {
	in := Info{ID: m.ID, Room: m.Room, Participant: m.Participant, ParticipantName: m.ParticipantName,
		Tracks: m.Tracks, Start: m.Start, End: m.End, State: m.State, Error: m.Error}
	if in.Tracks == nil {
		in.Tracks = []TrackMeta{}
	}
	if n, ok := fileSize(root, m.File); ok {
		in.Size += n
		in.ContentType, _ = mediaType(strings.TrimPrefix(m.File, m.ID))
	}
	if n, ok := fileSize(root, m.Chat); ok {
		in.Size += n
		in.Chat = true
	}
	switch {
	case m.State == StateRecording && !m.Start.IsZero():
		in.Duration = s.now().Sub(m.Start)
	case !m.End.IsZero() && !m.Start.IsZero():
		in.Duration = m.End.Sub(m.Start)
	}
	in.Duration = max(in.Duration, 0)
	return in
}

// sortOldestFirst orders candidates for deletion.
func sortOldestFirst(in []Info, ref func(Info) time.Time) {
	slices.SortFunc(in, func(a, b Info) int {
		return cmp.Or(ref(a).Compare(ref(b)), strings.Compare(a.ID, b.ID))
	})
}
