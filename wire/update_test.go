package wire

import (
	"encoding/json"
	"testing"
	"time"
)

func TestStatusUpdateMarshal(t *testing.T) {
	yes, no := true, false
	at := time.Date(2030, 1, 15, 12, 0, 0, 500_000_000, time.FixedZone("CET", 3600))
	tests := []struct {
		name string
		u    StatusUpdate
		want string
	}{
		{"empty", StatusUpdate{}, `{}`},
		{"online", StatusUpdate{IsOnline: &yes}, `{"is_online":true}`},
		{"invisible", StatusUpdate{IsOnline: &no}, `{"is_online":false}`},
		{"busy until, in UTC", StatusUpdate{IsBusy: &yes, BusyUntil: &at}, `{"is_busy":true,"busy_until":"2030-01-15T11:00:00.5Z"}`},
		{"busy_until alone", StatusUpdate{BusyUntil: &at}, `{"busy_until":"2030-01-15T11:00:00.5Z"}`},
		{"explicit null", StatusUpdate{ClearBusyUntil: true}, `{"busy_until":null}`},
		{"null wins", StatusUpdate{BusyUntil: &at, ClearBusyUntil: true}, `{"busy_until":null}`},
		{"all", StatusUpdate{IsOnline: &yes, IsBusy: &no, ClearBusyUntil: true}, `{"is_online":true,"is_busy":false,"busy_until":null}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.u)
			if err != nil || string(b) != tc.want {
				t.Fatalf("json.Marshal = %s, %v; want %s", b, err, tc.want)
			}
			// Pointers and values marshal alike.
			if b2, _ := json.Marshal(&tc.u); string(b2) != tc.want {
				t.Fatalf("json.Marshal(&u) = %s", b2)
			}
		})
	}
}
