// Package recorder will write server-side recordings: a recorder is a
// subscriber that receives packets through the same down-track interface
// and writes WebM/Ogg files, plus the store that lists and serves them.
// It is filled by the recording issue.
package recorder
