// Package messages holds the protobuf messages exchanged between HTTP
// handlers, WebSocket hubs, user actors and cluster nodes.
//
// The Go code is generated from presence.proto (make proto) and committed.
package messages

//go:generate protoc --go_out=. --go_opt=paths=source_relative presence.proto

// HubName is the well-known actor name of every node's WebSocket hub
// (api/ws spawns it): user actors push changes to it, and an admin
// disconnect reaches each node's hub at this name.
const HubName = "presence-hub"
