// Package docs holds the project's documentation; as a Go package it only
// embeds the machine-readable documents that tests and tools load.
package docs

import _ "embed"

// AsyncAPI is the AsyncAPI 3 document of the WebSocket protocol
// (docs/asyncapi.yaml).
//
//go:embed asyncapi.yaml
var AsyncAPI []byte
