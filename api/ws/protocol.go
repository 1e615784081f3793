package ws

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
)

// Client frame types.
const (
	frameHeartbeat   = "heartbeat"
	frameSubscribe   = "subscribe"
	frameUnsubscribe = "unsubscribe"
	frameRefresh     = "refresh"
)

// clientFrame is a client frame: {"type": ..., "user_ids": [...]}, or
// {"type": "refresh", "token": ...}.
type clientFrame struct {
	Type    string          `json:"type"`
	UserIDs json.RawMessage `json:"user_ids"`
	// Token is raw so that a token of the wrong type gets an error that
	// names it, not "not a JSON object".
	Token json.RawMessage `json:"token"`
}

// errFrame is a client frame the session answers with an error frame of
// this detail; the text is written for the client and holds nothing
// internal.
type errFrame string

func (e errFrame) Error() string { return string(e) }

// parseClientFrame parses a text frame. Its type is checked, for
// subscribe and unsubscribe its user_ids, for refresh its token (a
// non-empty string, not yet verified); an error is an errFrame.
func parseClientFrame(data []byte) (typ string, ids []int64, token string, err error) {
	var f clientFrame
	if err := json.Unmarshal(data, &f); err != nil || !bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		return "", nil, "", errFrame("frame is not a JSON object")
	}
	switch f.Type {
	case frameHeartbeat:
		return f.Type, nil, "", nil
	case frameSubscribe, frameUnsubscribe:
		ids, err := parseFrameIDs(f.UserIDs)
		if err != nil {
			return "", nil, "", err
		}
		return f.Type, ids, "", nil
	case frameRefresh:
		if json.Unmarshal(f.Token, &token) != nil || token == "" {
			return "", nil, "", errFrame("token is required: a JWT string")
		}
		return f.Type, nil, token, nil
	case "":
		return "", nil, "", errFrame("frame has no type")
	}
	return "", nil, "", errFrame("unknown frame type " + strconv.Quote(f.Type) + "; want subscribe, unsubscribe, heartbeat or refresh")
}

// parseFrameIDs parses a frame's user_ids: an array of bare JSON numbers
// that are positive integers, duplicates dropped.
func parseFrameIDs(raw json.RawMessage) ([]int64, error) {
	const errBad = errFrame("user_ids must be an array of positive integers")
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 {
		return nil, errFrame("user_ids is required: an array of positive integers")
	}
	if trimmed[0] != '[' {
		return nil, errBad
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(trimmed, &elems); err != nil {
		return nil, errBad
	}
	ids := make([]int64, 0, len(elems))
	seen := make(map[int64]struct{}, len(elems))
	for _, e := range elems {
		text := string(bytes.TrimSpace(e))
		if text == "" || text[0] < '0' || text[0] > '9' {
			return nil, errBad // a string, null, an object...
		}
		id, ok := parseID(text)
		if !ok {
			return nil, errBad
		}
		if _, dup := seen[id]; !dup {
			seen[id] = struct{}{}
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// parseQueryIDs parses ?user_ids= of the WebSocket URL: a comma-separated
// list of positive integers (spaces around them ignored), duplicates
// dropped, at most limit of them. The error's text is the 422 detail.
func parseQueryIDs(q string, limit int) ([]int64, error) {
	var ids []int64
	seen := map[int64]struct{}{}
	for _, part := range bytes.Split([]byte(q), []byte(",")) {
		id, ok := parseID(string(bytes.TrimSpace(part)))
		if !ok {
			return nil, errors.New("user_ids must be a comma-separated list of positive integers")
		}
		if _, dup := seen[id]; !dup {
			seen[id] = struct{}{}
			ids = append(ids, id)
		}
	}
	if len(ids) > limit {
		return nil, errors.New("user_ids exceeds the subscription limit of " + strconv.Itoa(limit))
	}
	return ids, nil
}

// parseID parses a user id: a positive decimal integer without a sign.
func parseID(s string) (int64, bool) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 || s[0] == '+' {
		return 0, false
	}
	return id, true
}
