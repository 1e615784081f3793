// Package client is the Go client of a presence cluster, for the chat or
// calling backend that asks who is online and wants to be told when that
// changes.
//
// A Client makes the REST calls (one method per endpoint, each bounded by
// its context; an answer other than 2xx is an *Error). A Subscriber keeps a
// WebSocket open to one of the nodes, re-subscribes after every reconnect
// and hands on presence updates in version order: it keeps the highest
// version seen per user and drops anything not above it, so a reconnect's
// fresh snapshot or a reordered push never moves a user back in time.
//
// The JSON types are those of package wire.
package client
