// Package web holds the static files a node serves to browsers, embedded
// in the binary: the operator dashboard (admin/, served at /admin/) and the
// JavaScript client module (client/presence.js, served at
// /client/presence.js). They are plain JavaScript and CSS, with no build
// step, and hold no secret: the dashboard asks the operator for a token.
package web

import "embed"

// Files are the embedded files, by their path under web/.
//
//go:embed admin/index.html admin/dashboard.js admin/dashboard.css admin/charts.js client/presence.js
var Files embed.FS
