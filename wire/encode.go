package wire

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/presence-cluster/presence/messages"
)

// The JSON bodies are written by hand: they are small, fixed in shape and on
// every hot path, and appending to a pooled buffer allocates nothing, where
// encoding/json would reflect over a struct per response.

// AppendStatus appends the status record of GET/PUT /users/me/status (the
// shape of Status).
func AppendStatus(b []byte, s *messages.UserState) []byte {
	b = append(b, `{"user_id":`...)
	b = strconv.AppendInt(b, s.GetUserId(), 10)
	b = appendState(b, s)
	b = append(b, `,"created_at":`...)
	b = appendTime(b, s.GetCreatedAt())
	b = append(b, `,"updated_at":`...)
	b = appendTime(b, s.GetUpdatedAt())
	return appendVersion(b, s)
}

// AppendPresence appends the presence record of GET /users/{id}/presence,
// the batch endpoint and WebSocket updates (the shape of Presence).
func AppendPresence(b []byte, s *messages.UserState) []byte {
	b = append(b, `{"user_id":`...)
	b = strconv.AppendInt(b, s.GetUserId(), 10)
	b = append(b, `,"username":`...)
	b = appendString(b, s.GetUsername())
	b = appendState(b, s)
	return appendVersion(b, s)
}

// appendState appends the fields both records share, in the seed's order.
func appendState(b []byte, s *messages.UserState) []byte {
	b = appendOnlineBusy(b, s)
	b = append(b, `,"last_seen":`...)
	return appendTime(b, s.GetLastSeen())
}

// appendOnlineBusy appends is_online, is_busy and busy_until.
func appendOnlineBusy(b []byte, s *messages.UserState) []byte {
	b = append(b, `,"is_online":`...)
	b = strconv.AppendBool(b, s.GetIsOnline())
	b = append(b, `,"is_busy":`...)
	b = strconv.AppendBool(b, s.GetIsBusy())
	b = append(b, `,"busy_until":`...)
	return appendTime(b, s.GetBusyUntil())
}

// appendVersion appends the version and closes the record.
func appendVersion(b []byte, s *messages.UserState) []byte {
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, s.GetVersion(), 10)
	return append(b, '}')
}

// AppendDetail appends the error body {"detail": "..."} (ErrorBody).
func AppendDetail(b []byte, detail string) []byte {
	b = append(b, `{"detail":`...)
	b = appendString(b, detail)
	return append(b, '}')
}

// AppendCleanup appends the answer of POST /admin/cleanup-presence
// (Cleanup) with CleanupMessage.
func AppendCleanup(b []byte, usersMarkedOffline, busyStatusCleared int64) []byte {
	b = append(b, `{"message":"`+CleanupMessage+`","users_marked_offline":`...)
	b = strconv.AppendInt(b, usersMarkedOffline, 10)
	b = append(b, `,"busy_status_cleared":`...)
	b = strconv.AppendInt(b, busyStatusCleared, 10)
	return append(b, '}')
}

// AppendDisconnect appends the answer of POST /admin/users/{id}/disconnect
// (Disconnect) with DisconnectMessage.
func AppendDisconnect(b []byte, sessionsClosed int64) []byte {
	b = append(b, `{"message":"`+DisconnectMessage+`","sessions_closed":`...)
	b = strconv.AppendInt(b, sessionsClosed, 10)
	return append(b, '}')
}

// appendTime writes a Unix-microsecond time as an RFC 3339 string in UTC
// ending in Z (fraction only when there is one), or null for 0.
func appendTime(b []byte, us int64) []byte {
	if us == 0 {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = time.UnixMicro(us).UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string: quotes, backslashes and control
// characters escaped, invalid UTF-8 replaced by U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, "\\ufffd"...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
