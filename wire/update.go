package wire

import (
	"strconv"
	"time"
)

// StatusUpdate is the body of PUT /users/me/status. Every field is
// optional: a nil field is left out and leaves that part of the status as
// it is. At least one field must be sent (the server answers 400
// otherwise).
//
// BusyUntil alone implies is_busy: true. To send "busy_until": null (keep
// busy, drop the expiry) set ClearBusyUntil; it wins over BusyUntil.
type StatusUpdate struct {
	IsOnline       *bool
	IsBusy         *bool
	BusyUntil      *time.Time
	ClearBusyUntil bool
}

// MarshalJSON writes only the fields that are set, busy_until in UTC.
func (u StatusUpdate) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 96)
	b = append(b, '{')
	field := func(name string) {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, `":`...)
	}
	if u.IsOnline != nil {
		field("is_online")
		b = strconv.AppendBool(b, *u.IsOnline)
	}
	if u.IsBusy != nil {
		field("is_busy")
		b = strconv.AppendBool(b, *u.IsBusy)
	}
	switch {
	case u.ClearBusyUntil:
		field("busy_until")
		b = append(b, "null"...)
	case u.BusyUntil != nil:
		field("busy_until")
		b = append(b, '"')
		b = u.BusyUntil.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	return append(b, '}'), nil
}
