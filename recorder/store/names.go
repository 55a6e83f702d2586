package store

import (
	"fmt"
	"path/filepath"
	"strings"
)

// MaxIDLen is the longest recording ID the store accepts.
const MaxIDLen = 64

// Name suffixes of the files of a recording.
const (
	chatSuffix = ".chat.jsonl"
	metaSuffix = ".json"
)

// mediaType maps the media file suffixes the store serves to their content
// type. A function rather than a package map, so that nothing can change
// it.
func mediaType(suffix string) (string, bool) {
	switch suffix {
	case ".webm":
		return "video/webm", true
	case ".mkv":
		return "video/x-matroska", true
	case ".ogg":
		return "audio/ogg", true
	}
	return "", false
}

// mediaSuffixes lists every suffix mediaType accepts.
func mediaSuffixes() []string { return []string{".webm", ".mkv", ".ogg"} }

// ChatContentType is the content type of a chat archive (one JSON value per
// line).
const ChatContentType = "application/x-ndjson"

// ValidID reports whether id may name a recording: 1 to MaxIDLen ASCII
// letters, digits, '_' or '-'. IDs come from URLs, so this is the first half
// of the store's protection against path traversal: such an ID cannot
// contain a separator, a dot, a NUL or an encoded form of any of them.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > MaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// mediaFileOK reports whether name is an acceptable media file name for
// recording id: exactly the ID followed by a known suffix. A metadata file
// is data on disk, not trusted code: its "file" field must not be able to
// point anywhere else.
func mediaFileOK(id, name string) bool {
	rest, ok := strings.CutPrefix(name, id)
	if !ok || !ValidID(id) {
		return false
	}
	_, ok = mediaType(rest)
	return ok
}

// chatFileOK reports whether name is an acceptable chat archive name for
// recording id.
func chatFileOK(id, name string) bool {
	return ValidID(id) && name == id+chatSuffix
}

// path returns the absolute path of name in the storage folder after
// checking that name is a plain file name and that the result stays inside
// the folder. It is the second half of the traversal protection; file
// access itself then goes through an os.Root, which also refuses symbolic
// links that leave the folder.
func (s *Store) path(name string) (string, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") ||
		filepath.Base(name) != name || filepath.IsAbs(name) || filepath.VolumeName(name) != "" {
		return "", fmt.Errorf("store: file name %q: %w", name, ErrBadID)
	}
	p := filepath.Join(s.dir, name)
	rel, err := filepath.Rel(s.dir, p)
	if err != nil || rel != name || strings.HasPrefix(rel, "..") {
		return "", fmt.Errorf("store: file name %q leaves the storage folder: %w", name, ErrBadID)
	}
	return p, nil
}
