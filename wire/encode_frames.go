package wire

import (
	"strconv"
	"time"

	"github.com/presence-cluster/presence/messages"
)

// AppendUpdateFrame appends a presence_update frame of st, stamped now.
func AppendUpdateFrame(b []byte, st *messages.UserState, now time.Time) []byte {
	b = append(b, `{"type":"presence_update","data":`...)
	b = AppendPresence(b, st)
	b = append(b, `,"timestamp":"`...)
	b = now.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}

// AppendIDsFrame appends a {"type": typ, "user_ids": ids} frame (the
// subscribed and unsubscribed answers). typ is written as is: it must be
// one of the Type constants.
func AppendIDsFrame(b []byte, typ string, ids []int64) []byte {
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","user_ids":[`...)
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return append(b, "]}"...)
}

// AppendErrorFrame appends an error frame {"type":"error","detail":...}.
func AppendErrorFrame(b []byte, detail string) []byte {
	b = append(b, `{"type":"error","detail":`...)
	b = appendString(b, detail)
	return append(b, '}')
}

// AppendRefreshedFrame appends the answer to a successful refresh:
// {"type":"refreshed","expires_at":...} with exp in RFC 3339, UTC.
func AppendRefreshedFrame(b []byte, exp time.Time) []byte {
	b = append(b, `{"type":"refreshed","expires_at":"`...)
	b = exp.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}
