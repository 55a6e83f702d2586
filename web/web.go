// Package web embeds the bundled browser client.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var files embed.FS

// FS is the client's files (index.html at the root).
func FS() fs.FS {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded folder always exists
	}
	return sub
}

// Handler serves the client.
func Handler() http.Handler { return http.FileServerFS(FS()) }
