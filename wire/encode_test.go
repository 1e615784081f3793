package wire

// The encoder tests moved here from api/encode_test.go with the encoders.

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/presence-cluster/presence/messages"
)

// usOf is s, an RFC 3339 time, in Unix microseconds.
func usOf(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMicro()
}

// keysInOrder returns the top-level keys of a JSON object as they appear.
func keysInOrder(t *testing.T, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("%s: not an object: %v %v", b, tok, err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
	}
	return keys
}

func TestAppendStatus(t *testing.T) {
	tests := []struct {
		name string
		st   *messages.UserState
		want string
	}{
		{
			name: "seed example",
			st: &messages.UserState{UserId: 123, Username: "ignored", IsOnline: true, LastSeen: usOf("2024-01-15T10:30:00Z"),
				CreatedAt: usOf("2024-01-15T10:30:00Z"), UpdatedAt: usOf("2024-01-15T10:30:00Z"), Version: 1},
			want: `{"user_id":123,"is_online":true,"is_busy":false,"busy_until":null,"last_seen":"2024-01-15T10:30:00Z","created_at":"2024-01-15T10:30:00Z","updated_at":"2024-01-15T10:30:00Z","version":1}`,
		},
		{
			name: "busy with fractions",
			st: &messages.UserState{UserId: 9223372036854775807, IsBusy: true, BusyUntil: usOf("2024-01-15T11:00:00.5Z"),
				LastSeen: usOf("2024-01-15T10:30:00.123456Z"), CreatedAt: usOf("2023-12-31T23:59:59.000001Z"),
				UpdatedAt: usOf("2024-01-15T10:30:00.12Z"), Version: math.MaxUint64},
			want: `{"user_id":9223372036854775807,"is_online":false,"is_busy":true,"busy_until":"2024-01-15T11:00:00.5Z","last_seen":"2024-01-15T10:30:00.123456Z","created_at":"2023-12-31T23:59:59.000001Z","updated_at":"2024-01-15T10:30:00.12Z","version":18446744073709551615}`,
		},
		{
			name: "all zero",
			st:   &messages.UserState{},
			want: `{"user_id":0,"is_online":false,"is_busy":false,"busy_until":null,"last_seen":null,"created_at":null,"updated_at":null,"version":0}`,
		},
		{
			name: "nil record",
			st:   nil,
			want: `{"user_id":0,"is_online":false,"is_busy":false,"busy_until":null,"last_seen":null,"created_at":null,"updated_at":null,"version":0}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := AppendStatus([]byte("prefix:"), tc.st)
			if string(got) != "prefix:"+tc.want {
				t.Fatalf("AppendStatus\n got  %s\n want prefix:%s", got, tc.want)
			}
			body := got[len("prefix:"):]
			if !json.Valid(body) {
				t.Fatalf("invalid JSON: %s", body)
			}
			keys := keysInOrder(t, body)
			wantKeys := []string{"user_id", "is_online", "is_busy", "busy_until", "last_seen", "created_at", "updated_at", "version"}
			if !slices.Equal(keys, wantKeys) {
				t.Fatalf("keys %v, want %v", keys, wantKeys)
			}
			var dec Status
			if err := json.Unmarshal(body, &dec); err != nil {
				t.Fatal(err)
			}
			st := tc.st
			if dec.UserID != st.GetUserId() || dec.IsOnline != st.GetIsOnline() || dec.IsBusy != st.GetIsBusy() || dec.Version != st.GetVersion() {
				t.Fatalf("decoded %+v from %v", dec, st)
			}
			checkTime(t, "busy_until", dec.BusyUntil, st.GetBusyUntil())
			checkTime(t, "last_seen", dec.LastSeen, st.GetLastSeen())
			checkTime(t, "created_at", dec.CreatedAt, st.GetCreatedAt())
			checkTime(t, "updated_at", dec.UpdatedAt, st.GetUpdatedAt())
		})
	}
}

func checkTime(t *testing.T, name string, got *time.Time, wantUS int64) {
	t.Helper()
	if wantUS == 0 {
		if got != nil {
			t.Fatalf("%s = %v, want null", name, got)
		}
		return
	}
	if got == nil || got.UnixMicro() != wantUS || got.Location() != time.UTC {
		t.Fatalf("%s = %v, want %v in UTC", name, got, time.UnixMicro(wantUS).UTC())
	}
}

func TestAppendPresence(t *testing.T) {
	tests := []struct {
		name string
		st   *messages.UserState
		want string
	}{
		{
			name: "seed example",
			st: &messages.UserState{UserId: 456, Username: "john_doe", IsOnline: true, IsBusy: true,
				BusyUntil: usOf("2024-01-15T11:00:00Z"), LastSeen: usOf("2024-01-15T10:30:00Z"),
				CreatedAt: usOf("2020-01-01T00:00:00Z"), UpdatedAt: usOf("2020-01-01T00:00:00Z"), Version: 12},
			want: `{"user_id":456,"username":"john_doe","is_online":true,"is_busy":true,"busy_until":"2024-01-15T11:00:00Z","last_seen":"2024-01-15T10:30:00Z","version":12}`,
		},
		{
			name: "no username, no times",
			st:   &messages.UserState{UserId: 1},
			want: `{"user_id":1,"username":"","is_online":false,"is_busy":false,"busy_until":null,"last_seen":null,"version":0}`,
		},
		{
			name: "non-ASCII username",
			st:   &messages.UserState{UserId: 2, Username: "Zoë 日本語 😀", LastSeen: usOf("1999-12-31T23:59:59.999999Z"), Version: 3},
			want: `{"user_id":2,"username":"Zoë 日本語 😀","is_online":false,"is_busy":false,"busy_until":null,"last_seen":"1999-12-31T23:59:59.999999Z","version":3}`,
		},
		{
			name: "hostile username",
			st:   &messages.UserState{UserId: 3, Username: "a\"b\\c\n\x00\x1f</script>\xff"},
			want: `{"user_id":3,"username":"a\"b\\c\n\u0000\u001f</script>\ufffd","is_online":false,"is_busy":false,"busy_until":null,"last_seen":null,"version":0}`,
		},
		{
			name: "time before 1970",
			st:   &messages.UserState{UserId: 4, LastSeen: -1},
			want: `{"user_id":4,"username":"","is_online":false,"is_busy":false,"busy_until":null,"last_seen":"1969-12-31T23:59:59.999999Z","version":0}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := AppendPresence(nil, tc.st)
			if string(got) != tc.want {
				t.Fatalf("AppendPresence\n got  %s\n want %s", got, tc.want)
			}
			if !json.Valid(got) {
				t.Fatalf("invalid JSON: %s", got)
			}
			keys := keysInOrder(t, got)
			wantKeys := []string{"user_id", "username", "is_online", "is_busy", "busy_until", "last_seen", "version"}
			if !slices.Equal(keys, wantKeys) {
				t.Fatalf("keys %v, want %v", keys, wantKeys)
			}
			var dec Presence
			if err := json.Unmarshal(got, &dec); err != nil {
				t.Fatal(err)
			}
			st := tc.st
			if dec.UserID != st.GetUserId() || dec.Username != jsonRoundTrip(t, st.GetUsername()) ||
				dec.IsOnline != st.GetIsOnline() || dec.IsBusy != st.GetIsBusy() || dec.Version != st.GetVersion() {
				t.Fatalf("decoded %+v from %v", dec, st)
			}
			checkTime(t, "busy_until", dec.BusyUntil, st.GetBusyUntil())
			checkTime(t, "last_seen", dec.LastSeen, st.GetLastSeen())
		})
	}
}

func TestAppendDetail(t *testing.T) {
	for detail, want := range map[string]string{
		"No status fields to update": `{"detail":"No status fields to update"}`,
		"User status not found":      `{"detail":"User status not found"}`,
		`field "x" \ bad`:            `{"detail":"field \"x\" \\ bad"}`,
		"":                           `{"detail":""}`,
		"line\nbreak\ttab\r\x7f":     `{"detail":"line\nbreak\ttab\r` + "\x7f" + `"}`,
		"bad utf8 \xc3\x28 \xe2€":    `{"detail":"bad utf8 \ufffd( \ufffd€"}`,
	} {
		got := AppendDetail(nil, detail)
		if string(got) != want {
			t.Errorf("AppendDetail(%q) = %s, want %s", detail, got, want)
			continue
		}
		var dec map[string]string
		if err := json.Unmarshal(got, &dec); err != nil || len(dec) != 1 || dec["detail"] != jsonRoundTrip(t, detail) {
			t.Errorf("AppendDetail(%q) decodes to %v, %v", detail, dec, err)
		}
	}
}

// jsonRoundTrip is what encoding/json makes of s: s itself for valid UTF-8,
// with each invalid byte replaced by U+FFFD otherwise.
func jsonRoundTrip(t testing.TB, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out string
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAppendString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"alice", `"alice"`},
		{`say "hi"`, `"say \"hi\""`},
		{`C:\path\`, `"C:\\path\\"`},
		{"a\nb\rc\td", `"a\nb\rc\td"`},
		{"\x00\x01\x08\x0b\x0c\x1b\x1f", `"\u0000\u0001\u0008\u000b\u000c\u001b\u001f"`},
		{" \x7f~", "\" \x7f~\""},
		{"Zoë", `"Zoë"`},
		{"日本語", `"日本語"`},
		{"😀 emoji", `"😀 emoji"`},
		{"\u2028\u2029", "\"\u2028\u2029\""},
		{"\xff", `"\ufffd"`},
		{"a\xc3", `"a\ufffd"`},                             // truncated sequence
		{"\xc3\x28", `"\ufffd("`},                          // bad continuation
		{"\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`},           // UTF-16 surrogate
		{"\xf4\x90\x80\x80", `"\ufffd\ufffd\ufffd\ufffd"`}, // beyond U+10FFFF
		{"\xc0\xaf", `"\ufffd\ufffd"`},                     // overlong
		{"ok\xffok\"", `"ok\ufffdok\""`},
		{"\uFFFD", "\"\uFFFD\""}, // a real U+FFFD passes through
	}
	for _, tc := range tests {
		got := appendString([]byte("x"), tc.in)
		if string(got) != "x"+tc.want {
			t.Errorf("appendString(%q) = %s, want %s", tc.in, got[1:], tc.want)
			continue
		}
		var dec string
		if err := json.Unmarshal(got[1:], &dec); err != nil {
			t.Errorf("appendString(%q) = %s: %v", tc.in, got[1:], err)
			continue
		}
		if want := jsonRoundTrip(t, tc.in); dec != want {
			t.Errorf("appendString(%q) decodes to %q, want %q", tc.in, dec, want)
		}
	}
}

func TestAppendTime(t *testing.T) {
	tests := []struct {
		us   int64
		want string
	}{
		{0, "null"},
		{usOf("2024-01-15T10:30:00Z"), `"2024-01-15T10:30:00Z"`},
		{usOf("2024-01-15T10:30:00.000001Z"), `"2024-01-15T10:30:00.000001Z"`},
		{usOf("2024-01-15T10:30:00.1Z"), `"2024-01-15T10:30:00.1Z"`},
		{usOf("2024-01-15T12:30:00+02:00"), `"2024-01-15T10:30:00Z"`},
		{1, `"1970-01-01T00:00:00.000001Z"`},
		{-1_000_000, `"1969-12-31T23:59:59Z"`},
		{usOf("9999-12-31T23:59:59.999999Z"), `"9999-12-31T23:59:59.999999Z"`},
	}
	for _, tc := range tests {
		got := appendTime(nil, tc.us)
		if string(got) != tc.want {
			t.Errorf("appendTime(%d) = %s, want %s", tc.us, got, tc.want)
			continue
		}
		if tc.us == 0 {
			continue
		}
		var tm time.Time
		if err := json.Unmarshal(got, &tm); err != nil || tm.UnixMicro() != tc.us || !strings.HasSuffix(string(got), `Z"`) {
			t.Errorf("appendTime(%d) = %s decodes to %v, %v", tc.us, got, tm, err)
		}
	}
}

func TestAppendPresenceDoesNotAllocateWithCapacity(t *testing.T) {
	st := benchPresence()
	buf := make([]byte, 0, 512)
	allocs := testing.AllocsPerRun(100, func() { buf = AppendPresence(buf[:0], st) })
	if allocs != 0 {
		t.Fatalf("AppendPresence allocates %.1f times per call into a big enough buffer, want 0", allocs)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "alice", `"`, `\`, "\x00", "\x1f\x7f", "Zoë 日本 😀", "\xff", "a\xc3", "\xed\xa0\x80",
		"\u2028", "</script>", "\uFFFD", strings.Repeat("\\\"", 10)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := appendString([]byte(`{"k":`), s)
		out = append(out, '}')
		if !json.Valid(out) {
			t.Fatalf("appendString(%q) is not valid JSON: %s", s, out)
		}
		var dec map[string]string
		if err := json.Unmarshal(out, &dec); err != nil {
			t.Fatalf("appendString(%q): %v", s, err)
		}
		if want := jsonRoundTrip(t, s); dec["k"] != want {
			t.Fatalf("appendString(%q) decodes to %q, want %q", s, dec["k"], want)
		}
		if utf8.ValidString(s) && dec["k"] != s {
			t.Fatalf("valid UTF-8 %q changed to %q", s, dec["k"])
		}
		// The record encoders built on it stay valid too.
		p := AppendPresence(nil, &messages.UserState{UserId: int64(len(s)), Username: s, LastSeen: int64(len(s)) * 1e6})
		if !json.Valid(p) {
			t.Fatalf("AppendPresence with username %q: %s", s, p)
		}
		if d := AppendDetail(nil, s); !json.Valid(d) {
			t.Fatalf("AppendDetail(%q): %s", s, d)
		}
	})
}

func benchPresence() *messages.UserState {
	return &messages.UserState{UserId: 123456, Username: "john_doe \"the\" tester", IsOnline: true, IsBusy: true,
		BusyUntil: usOf("2024-01-15T11:00:00Z"), LastSeen: usOf("2024-01-15T10:30:00.123456Z"), Version: 42}
}

func BenchmarkAppendPresence(b *testing.B) {
	st := benchPresence()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendPresence(buf[:0], st)
	}
	b.SetBytes(int64(len(buf)))
}
