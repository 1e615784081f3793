package wire_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/wire"
)

func ExampleStatusUpdate() {
	busy := true
	until := time.Date(2030, 1, 15, 12, 0, 0, 0, time.FixedZone("CET", 3600))
	b, _ := json.Marshal(wire.StatusUpdate{IsBusy: &busy, BusyUntil: &until})
	fmt.Println(string(b))
	b, _ = json.Marshal(wire.StatusUpdate{ClearBusyUntil: true})
	fmt.Println(string(b))
	// Output:
	// {"is_busy":true,"busy_until":"2030-01-15T11:00:00Z"}
	// {"busy_until":null}
}

func ExampleAppendPresence() {
	st := &messages.UserState{UserId: 456, Username: "bob", IsOnline: true, Version: 7,
		LastSeen: time.Date(2026, 11, 29, 21, 26, 50, 0, time.UTC).UnixMicro()}
	buf := make([]byte, 0, 256) // reused across calls: no allocation
	buf = wire.AppendPresence(buf[:0], st)
	fmt.Println(string(buf))

	var p wire.Presence
	_ = json.Unmarshal(buf, &p)
	fmt.Println(p.Username, p.Version)
	// Output:
	// {"user_id":456,"username":"bob","is_online":true,"is_busy":false,"busy_until":null,"last_seen":"2026-11-29T21:26:50Z","version":7}
	// bob 7
}

func ExampleFrame() {
	raw := `{"type":"presence_update","data":{"user_id":456,"username":"bob","is_online":true,"is_busy":false,"busy_until":null,"last_seen":"2026-11-29T21:26:50.140534Z","version":7},"timestamp":"2026-11-29T21:26:50.143464Z"}`
	var f wire.Frame
	if err := json.Unmarshal([]byte(raw), &f); err != nil {
		panic(err)
	}
	switch f.Type {
	case wire.TypePresenceUpdate:
		fmt.Println(f.Data.Username, "online:", f.Data.IsOnline, "version:", f.Data.Version)
	}
	b, _ := json.Marshal(wire.SubscribeFrame([]int64{456, 789}))
	fmt.Println(string(b))
	// Output:
	// bob online: true version: 7
	// {"type":"subscribe","user_ids":[456,789]}
}
