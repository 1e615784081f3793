package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strconv"

	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/wire"
)

// detailNoVisibilityFields is the 400 of a visibility PUT that names none
// of its fields.
const detailNoVisibilityFields = "No visibility fields to update"

// errNoVisibilityFields is a visibility PUT that names no field (400).
var errNoVisibilityFields = errors.New(detailNoVisibilityFields)

// Details of the visibility PUT's 422 answers; each names its field.
const (
	detailVisibilityMode  = " must be one of \"everyone\", \"nobody\", \"allowlist\""
	detailVisibilityAllow = "allow must be an array of positive integer user ids"
	detailVisibilityLimit = "allow must hold at most 1000 user ids"
)

// parseVisibilityUpdate parses the body of PUT /users/me/visibility (and
// of the admin's PUT) into a SetVisibility (user fields left for the
// caller). allow is deduplicated and sorted, which the user actor and every
// reader's binary search rely on. Unknown fields are ignored; a body that
// names none of the three fields is errNoVisibilityFields.
func parseVisibilityUpdate(body []byte) (*messages.SetVisibility, error) {
	fields, err := objectFields(body)
	if err != nil {
		return nil, err
	}
	m := &messages.SetVisibility{}
	if raw, ok := fields["presence"]; ok {
		m.SetPresence = true
		if m.Presence, err = parseMode(raw, "presence"); err != nil {
			return nil, err
		}
	}
	if raw, ok := fields["last_seen"]; ok {
		m.SetLastSeen = true
		if m.LastSeen, err = parseMode(raw, "last_seen"); err != nil {
			return nil, err
		}
	}
	if raw, ok := fields["allow"]; ok {
		m.SetAllow = true
		if m.Allow, err = parseAllow(raw); err != nil {
			return nil, err
		}
	}
	if !m.SetPresence && !m.SetLastSeen && !m.SetAllow {
		return nil, errNoVisibilityFields
	}
	return m, nil
}

// parseMode parses a visibility mode: one of the three names, as a JSON
// string.
func parseMode(raw json.RawMessage, name string) (messages.VisibilityMode, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if mode, ok := wire.ParseMode(s); ok {
			return mode, nil
		}
	}
	return 0, errValidation(name + detailVisibilityMode)
}

// parseAllow parses the allowlist: a JSON array of positive integers (no
// fractions, exponents or strings), at most wire.MaxVisibilityAllow
// distinct ones. The result is sorted and without duplicates, and never
// nil (an empty array clears the list).
func parseAllow(raw json.RawMessage) ([]int64, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, errValidation(detailVisibilityAllow)
	}
	ids := make([]int64, 0, len(items))
	for _, item := range items {
		text := string(bytes.TrimSpace(item))
		id, err := strconv.ParseInt(text, 10, 64)
		if err != nil || id <= 0 || text[0] == '+' {
			return nil, errValidation(detailVisibilityAllow)
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) > wire.MaxVisibilityAllow {
		return nil, errValidation(detailVisibilityLimit)
	}
	return ids, nil
}
