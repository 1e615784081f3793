package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/presence-cluster/presence/messages"
)

// MaxBatchIDs is the most distinct ids GET /users/presence accepts.
const MaxBatchIDs = 50

// Details of the documented errors.
const (
	detailNoFields      = "No status fields to update"
	detailTooManyIDs    = "Too many user IDs requested"
	detailNotFound      = "User status not found"
	detailInvalidToken  = "Invalid or expired token"
	detailAdminRequired = "Admin privileges required"
)

// errValidation is a request the API refuses with 422 and this detail.
type errValidation string

func (e errValidation) Error() string { return string(e) }

// errNoFields is a PUT that names none of the status fields (400).
var errNoFields = errors.New(detailNoFields)

// objectFields splits a request body that must be a JSON object into its
// fields (422 otherwise).
func objectFields(body []byte) (map[string]json.RawMessage, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, errValidation("Request body must be a JSON object")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, errValidation("Request body is not valid JSON")
	}
	return fields, nil
}

// parseStatusUpdate parses the body of PUT /users/me/status into an
// UpdateStatus (user fields left for the caller). now is used to refuse a
// busy_until that is not in the future.
func parseStatusUpdate(body []byte, now time.Time) (*messages.UpdateStatus, error) {
	fields, err := objectFields(body)
	if err != nil {
		return nil, err
	}
	u := &messages.UpdateStatus{}
	if raw, ok := fields["is_online"]; ok {
		v, err := parseBool(raw, "is_online")
		if err != nil {
			return nil, err
		}
		u.SetOnline, u.IsOnline = true, v
	}
	if raw, ok := fields["is_busy"]; ok {
		v, err := parseBool(raw, "is_busy")
		if err != nil {
			return nil, err
		}
		u.SetBusy, u.IsBusy = true, v
	}
	if raw, ok := fields["busy_until"]; ok {
		t, null, err := parseTime(raw, "busy_until")
		if err != nil {
			return nil, err
		}
		u.SetBusyUntil = true
		if !null {
			// is_busy false clears the expiry anyway, so the value is not
			// judged then (the seed's own example sends a past one).
			if !(u.SetBusy && !u.IsBusy) && !t.After(now) {
				return nil, errValidation("busy_until must be in the future")
			}
			u.BusyUntil = t.UnixMicro()
		}
	}
	if !u.SetOnline && !u.SetBusy && !u.SetBusyUntil {
		return nil, errNoFields
	}
	return u, nil
}

func parseBool(raw json.RawMessage, name string) (bool, error) {
	switch string(bytes.TrimSpace(raw)) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	case "null":
		return false, errValidation(name + " must be a boolean, not null")
	}
	return false, errValidation(name + " must be a boolean")
}

// parseTime parses an RFC 3339 date-time string, or null. A date-time
// without a zone is taken as UTC, as Python clients send
// datetime.isoformat() of a naive UTC time.
func parseTime(raw json.RawMessage, name string) (t time.Time, null bool, err error) {
	if string(bytes.TrimSpace(raw)) == "null" {
		return time.Time{}, true, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return time.Time{}, false, errValidation(name + " must be an RFC 3339 date-time string or null")
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), false, nil
		}
	}
	return time.Time{}, false, errValidation(name + " must be an RFC 3339 date-time string or null")
}

// parseUserID parses a path id: a positive decimal integer.
func parseUserID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 || s[0] == '+' {
		return 0, errValidation("user_id must be a positive integer")
	}
	return id, nil
}

// parseUserIDs parses the batch query: positive integers separated by
// commas, spaces around them ignored. Every id is checked before duplicates
// are dropped and the count is limited, so a malformed list is always 422.
func parseUserIDs(q string) ([]int64, error) {
	if strings.TrimSpace(q) == "" {
		return nil, errValidation("user_ids is required: a comma-separated list of positive integers")
	}
	ids := make([]int64, 0, min(strings.Count(q, ",")+1, MaxBatchIDs+1))
	seen := make(map[int64]struct{}, cap(ids))
	for part := range strings.SplitSeq(q, ",") {
		id, err := parseUserID(strings.TrimSpace(part))
		if err != nil {
			return nil, errValidation("user_ids must be a comma-separated list of positive integers")
		}
		if _, dup := seen[id]; dup {
			continue
		}
		seen[id] = struct{}{}
		ids = append(ids, id)
	}
	if len(ids) > MaxBatchIDs {
		return nil, errTooManyIDs
	}
	return ids, nil
}

var errTooManyIDs = errors.New(detailTooManyIDs)

// parseDryRun parses the dry_run query parameter: true, false, 1 or 0
// (absent: false; present, even empty, it must be one of them).
func parseDryRun(present bool, q string) (bool, error) {
	if !present {
		return false, nil
	}
	switch q {
	case "false", "0":
		return false, nil
	case "true", "1":
		return true, nil
	}
	return false, errValidation("dry_run must be true, false, 1 or 0")
}
