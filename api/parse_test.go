package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/presence-cluster/presence/messages"
)

// parseNow is the "now" every parseStatusUpdate test runs at.
var parseNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func mustTime(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMicro()
}

const (
	detailNotObject = "Request body must be a JSON object"
	detailBadJSON   = "Request body is not valid JSON"
	detailOnlineT   = "is_online must be a boolean"
	detailOnlineN   = "is_online must be a boolean, not null"
	detailBusyT     = "is_busy must be a boolean"
	detailBusyN     = "is_busy must be a boolean, not null"
	detailUntilT    = "busy_until must be an RFC 3339 date-time string or null"
	detailUntilPast = "busy_until must be in the future"
	detailIDs       = "user_ids must be a comma-separated list of positive integers"
	detailIDsEmpty  = "user_ids is required: a comma-separated list of positive integers"
	detailID        = "user_id must be a positive integer"
)

func TestParseStatusUpdate(t *testing.T) {
	in1h := mustTime("2025-03-01T13:00:00Z")
	tests := []struct {
		name   string
		body   string
		want   *messages.UpdateStatus
		detail string // 422 detail; "" with want == nil means errNoFields
	}{
		// Accepted.
		{name: "is_online true", body: `{"is_online": true}`, want: &messages.UpdateStatus{SetOnline: true, IsOnline: true}},
		{name: "is_online false", body: `{"is_online": false}`, want: &messages.UpdateStatus{SetOnline: true}},
		{name: "is_busy true", body: `{"is_busy": true}`, want: &messages.UpdateStatus{SetBusy: true, IsBusy: true}},
		{name: "is_busy false", body: `{"is_busy":false}`, want: &messages.UpdateStatus{SetBusy: true}},
		{name: "busy with busy_until", body: `{"is_busy": true, "busy_until": "2025-03-01T13:00:00Z"}`,
			want: &messages.UpdateStatus{SetBusy: true, IsBusy: true, SetBusyUntil: true, BusyUntil: in1h}},
		{name: "busy_until alone", body: `{"busy_until": "2025-03-01T13:00:00Z"}`,
			want: &messages.UpdateStatus{SetBusyUntil: true, BusyUntil: in1h}},
		{name: "busy_until null", body: `{"busy_until": null}`, want: &messages.UpdateStatus{SetBusyUntil: true}},
		{name: "busy with busy_until null", body: `{"is_busy": true, "busy_until": null}`,
			want: &messages.UpdateStatus{SetBusy: true, IsBusy: true, SetBusyUntil: true}},
		{name: "all three", body: `{"is_online": false, "is_busy": true, "busy_until": "2025-03-01T13:00:00Z"}`,
			want: &messages.UpdateStatus{SetOnline: true, SetBusy: true, IsBusy: true, SetBusyUntil: true, BusyUntil: in1h}},
		{name: "busy_until with an offset", body: `{"busy_until": "2025-03-01T14:30:00+02:00"}`,
			want: &messages.UpdateStatus{SetBusyUntil: true, BusyUntil: mustTime("2025-03-01T12:30:00Z")}},
		{name: "busy_until with a negative offset", body: `{"busy_until": "2025-03-01T07:30:00-05:00"}`,
			want: &messages.UpdateStatus{SetBusyUntil: true, BusyUntil: mustTime("2025-03-01T12:30:00Z")}},
		{name: "busy_until one microsecond ahead", body: `{"busy_until": "2025-03-01T12:00:00.000001Z"}`,
			want: &messages.UpdateStatus{SetBusyUntil: true, BusyUntil: parseNow.UnixMicro() + 1}},
		{name: "busy_until with fraction", body: `{"busy_until": "2025-03-01T13:00:00.25Z"}`,
			want: &messages.UpdateStatus{SetBusyUntil: true, BusyUntil: in1h + 250_000}},
		{name: "naive busy_until is UTC", body: `{"busy_until": "2025-03-01T13:00:00"}`,
			want: &messages.UpdateStatus{SetBusyUntil: true, BusyUntil: in1h}},
		{name: "naive busy_until with microseconds", body: `{"busy_until": "2025-03-01T13:00:00.123456"}`,
			want: &messages.UpdateStatus{SetBusyUntil: true, BusyUntil: in1h + 123456}},
		{name: "far future busy_until", body: `{"busy_until": "9999-12-31T23:59:59Z"}`,
			want: &messages.UpdateStatus{SetBusyUntil: true, BusyUntil: mustTime("9999-12-31T23:59:59Z")}},
		{name: "is_busy false with a past busy_until is accepted", body: `{"is_busy": false, "busy_until": "2020-01-01T00:00:00Z"}`,
			want: &messages.UpdateStatus{SetBusy: true, SetBusyUntil: true, BusyUntil: mustTime("2020-01-01T00:00:00Z")}},
		{name: "is_busy false with busy_until now is accepted", body: `{"busy_until": "2025-03-01T12:00:00Z", "is_busy": false}`,
			want: &messages.UpdateStatus{SetBusy: true, SetBusyUntil: true, BusyUntil: parseNow.UnixMicro()}},
		{name: "unknown fields are ignored", body: `{"is_online": true, "status": "away", "extra": {"a": [1, null]}, "IS_BUSY": 3}`,
			want: &messages.UpdateStatus{SetOnline: true, IsOnline: true}},
		{name: "whitespace around", body: " \r\n\t{ \"is_online\" :\n true } \n", want: &messages.UpdateStatus{SetOnline: true, IsOnline: true}},

		// 400: no status field.
		{name: "empty object", body: `{}`},
		{name: "empty object with spaces", body: " { } "},
		{name: "only unknown fields", body: `{"status": "busy", "online": true}`},
		{name: "field names are case-sensitive", body: `{"Is_Online": true, "IS_BUSY": true}`},

		// 422: not a JSON object.
		{name: "empty body", body: ``, detail: detailNotObject},
		{name: "blank body", body: " \n\t", detail: detailNotObject},
		{name: "array", body: `[{"is_online": true}]`, detail: detailNotObject},
		{name: "string", body: `"is_online"`, detail: detailNotObject},
		{name: "null", body: `null`, detail: detailNotObject},
		{name: "number", body: `1`, detail: detailNotObject},
		{name: "true", body: `true`, detail: detailNotObject},
		{name: "form encoded", body: `is_online=true`, detail: detailNotObject},

		// 422: invalid JSON.
		{name: "unterminated object", body: `{"is_online": true`, detail: detailBadJSON},
		{name: "bad literal", body: `{"is_online": tru}`, detail: detailBadJSON},
		{name: "trailing garbage", body: `{"is_online": true} x`, detail: detailBadJSON},
		{name: "two objects", body: `{"is_online": true}{}`, detail: detailBadJSON},
		{name: "single quotes", body: `{'is_online': true}`, detail: detailBadJSON},
		{name: "trailing comma", body: `{"is_online": true,}`, detail: detailBadJSON},

		// 422: wrong types and nulls name the field.
		{name: "is_online string", body: `{"is_online": "true"}`, detail: detailOnlineT},
		{name: "is_online number", body: `{"is_online": 1}`, detail: detailOnlineT},
		{name: "is_online object", body: `{"is_online": {}}`, detail: detailOnlineT},
		{name: "is_online null", body: `{"is_online": null}`, detail: detailOnlineN},
		{name: "is_busy string", body: `{"is_busy": "yes"}`, detail: detailBusyT},
		{name: "is_busy array", body: `{"is_busy": [true]}`, detail: detailBusyT},
		{name: "is_busy null", body: `{"is_busy": null}`, detail: detailBusyN},
		{name: "is_busy null with valid others", body: `{"is_online": true, "is_busy": null}`, detail: detailBusyN},
		{name: "busy_until number", body: `{"busy_until": 1740834000}`, detail: detailUntilT},
		{name: "busy_until bool", body: `{"busy_until": true}`, detail: detailUntilT},
		{name: "busy_until object", body: `{"busy_until": {}}`, detail: detailUntilT},
		{name: "busy_until empty", body: `{"busy_until": ""}`, detail: detailUntilT},
		{name: "busy_until words", body: `{"busy_until": "tomorrow"}`, detail: detailUntilT},
		{name: "busy_until date only", body: `{"busy_until": "2025-03-02"}`, detail: detailUntilT},
		{name: "busy_until without seconds", body: `{"busy_until": "2025-03-01T13:00Z"}`, detail: detailUntilT},
		{name: "busy_until bad month", body: `{"busy_until": "2025-13-01T13:00:00Z"}`, detail: detailUntilT},
		{name: "busy_until bad zone", body: `{"busy_until": "2025-03-01T13:00:00 UTC"}`, detail: detailUntilT},
		{name: "busy_until format still checked with is_busy false", body: `{"is_busy": false, "busy_until": "soon"}`, detail: detailUntilT},

		// 422: busy_until not in the future.
		{name: "busy_until now", body: `{"busy_until": "2025-03-01T12:00:00Z"}`, detail: detailUntilPast},
		{name: "busy_until past", body: `{"is_busy": true, "busy_until": "2025-03-01T11:59:59.999999Z"}`, detail: detailUntilPast},
		{name: "busy_until past via offset", body: `{"busy_until": "2025-03-01T13:00:00+01:00"}`, detail: detailUntilPast},
		{name: "naive busy_until past", body: `{"busy_until": "2025-03-01T11:00:00"}`, detail: detailUntilPast},
		{name: "busy_until epoch", body: `{"busy_until": "1970-01-01T00:00:00Z"}`, detail: detailUntilPast},
		{name: "busy_until before the epoch", body: `{"is_busy": true, "busy_until": "1960-01-01T00:00:00Z"}`, detail: detailUntilPast},
		// The zero time.Time is a real date-time in the past, not a null.
		{name: "busy_until year 1 is past, not null", body: `{"is_busy": true, "busy_until": "0001-01-01T00:00:00Z"}`, detail: detailUntilPast},
		{name: "busy_until year 1 alone is past, not null", body: `{"busy_until": "0001-01-01T00:00:00"}`, detail: detailUntilPast},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatusUpdate([]byte(tc.body), parseNow)
			switch {
			case tc.want != nil:
				if err != nil {
					t.Fatalf("parseStatusUpdate(%s) error %v, want %v", tc.body, err, tc.want)
				}
				if !proto.Equal(got, tc.want) {
					t.Fatalf("parseStatusUpdate(%s)\n got  %v\n want %v", tc.body, got, tc.want)
				}
			case tc.detail == "":
				if !errors.Is(err, errNoFields) {
					t.Fatalf("parseStatusUpdate(%s) = %v, %v; want errNoFields", tc.body, got, err)
				}
			default:
				var v errValidation
				if !errors.As(err, &v) || string(v) != tc.detail {
					t.Fatalf("parseStatusUpdate(%s) = %v, %v; want 422 %q", tc.body, got, err, tc.detail)
				}
				if got != nil {
					t.Fatalf("parseStatusUpdate(%s) returned %v with its error", tc.body, got)
				}
			}
		})
	}
}

func TestParseStatusUpdateUsesNow(t *testing.T) {
	body := []byte(`{"busy_until": "2025-03-01T13:00:00Z"}`)
	if _, err := parseStatusUpdate(body, parseNow); err != nil {
		t.Fatalf("an hour ahead of now: %v", err)
	}
	var v errValidation
	if _, err := parseStatusUpdate(body, parseNow.Add(time.Hour)); !errors.As(err, &v) || string(v) != detailUntilPast {
		t.Fatalf("at busy_until: %v, want %q", err, detailUntilPast)
	}
	// A now in another zone is the same instant.
	if _, err := parseStatusUpdate(body, parseNow.In(time.FixedZone("X", -11*3600))); err != nil {
		t.Fatalf("now in another zone: %v", err)
	}
}

func idsUpTo(n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(i + 1)
	}
	return out
}

func joinIDs(ids []int64) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(parts, ",")
}

func TestParseUserIDs(t *testing.T) {
	fifty := idsUpTo(50)
	tests := []struct {
		name   string
		q      string
		want   []int64
		detail string // 422 detail; "" with want == nil means errTooManyIDs
	}{
		{name: "one", q: "1", want: []int64{1}},
		{name: "several in order", q: "3,1,2", want: []int64{3, 1, 2}},
		{name: "spaces around", q: " 1 , 2 ,3 ", want: []int64{1, 2, 3}},
		{name: "tabs and newlines around", q: "\t1,\n2 ", want: []int64{1, 2}},
		{name: "duplicates dropped keeping first order", q: "3,1,3,2,1,3", want: []int64{3, 1, 2}},
		{name: "duplicates with spaces", q: "5, 5 ,5", want: []int64{5}},
		{name: "leading zeros", q: "007,7", want: []int64{7}},
		{name: "max int64", q: "9223372036854775807", want: []int64{math.MaxInt64}},
		{name: "50 ids", q: joinIDs(fifty), want: fifty},
		{name: "50 distinct among 100", q: joinIDs(append(slices.Clone(fifty), fifty...)), want: fifty},
		{name: "51 ids", q: joinIDs(idsUpTo(51))},
		{name: "200 ids", q: joinIDs(idsUpTo(200))},

		{name: "empty", q: "", detail: detailIDsEmpty},
		{name: "blank", q: "  ", detail: detailIDsEmpty},
		{name: "plus sign", q: "+5", detail: detailIDs},
		{name: "zero", q: "0", detail: detailIDs},
		{name: "negative", q: "-1", detail: detailIDs},
		{name: "overflow", q: "9223372036854775808", detail: detailIDs},
		{name: "huge", q: "99999999999999999999999999", detail: detailIDs},
		{name: "empty element", q: "1,,2", detail: detailIDs},
		{name: "trailing comma", q: "1,2,", detail: detailIDs},
		{name: "leading comma", q: ",1", detail: detailIDs},
		{name: "only commas", q: ",,", detail: detailIDs},
		{name: "blank element", q: "1, ,2", detail: detailIDs},
		{name: "letters", q: "abc", detail: detailIDs},
		{name: "decimal", q: "1.5", detail: detailIDs},
		{name: "exponent", q: "1e3", detail: detailIDs},
		{name: "hex", q: "0x10", detail: detailIDs},
		{name: "underscore", q: "1_000", detail: detailIDs},
		{name: "inner space", q: "1 2", detail: detailIDs},
		{name: "semicolons", q: "1;2", detail: detailIDs},
		{name: "fullwidth digit", q: "１", detail: detailIDs},
		{name: "one bad among good", q: "1,2,x,4", detail: detailIDs},
		{name: "malformed after 51 valid is still 422", q: joinIDs(idsUpTo(51)) + ",x", detail: detailIDs},
		{name: "malformed first of 100 is still 422", q: "0," + joinIDs(idsUpTo(100)), detail: detailIDs},
		{name: "empty element among 60 is still 422", q: joinIDs(idsUpTo(60)) + ",", detail: detailIDs},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseUserIDs(tc.q)
			switch {
			case tc.want != nil:
				if err != nil || !slices.Equal(got, tc.want) {
					t.Fatalf("parseUserIDs(%q) = %v, %v; want %v", tc.q, got, err, tc.want)
				}
			case tc.detail == "":
				if !errors.Is(err, errTooManyIDs) {
					t.Fatalf("parseUserIDs(%q) = %v, %v; want errTooManyIDs", tc.q, got, err)
				}
			default:
				var v errValidation
				if !errors.As(err, &v) || string(v) != tc.detail {
					t.Fatalf("parseUserIDs(%q) = %v, %v; want 422 %q", tc.q, got, err, tc.detail)
				}
			}
		})
	}
}

func TestParseUserID(t *testing.T) {
	valid := map[string]int64{"1": 1, "42": 42, "007": 7, "9223372036854775807": math.MaxInt64}
	for s, want := range valid {
		if got, err := parseUserID(s); err != nil || got != want {
			t.Errorf("parseUserID(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "0", "00", "-1", "-0", "+1", "abc", "1a", " 1", "1 ", "1.0", "1e2", "0x1",
		"9223372036854775808", "18446744073709551616", "１", "me"} {
		got, err := parseUserID(s)
		var v errValidation
		if !errors.As(err, &v) || string(v) != detailID || got != 0 {
			t.Errorf("parseUserID(%q) = %d, %v; want 422 %q", s, got, err, detailID)
		}
	}
}

// refUserIDs is an independent statement of the batch rules: every element,
// spaces trimmed, is a run of ASCII digits that is not zero and fits in an
// int64; duplicates go, first occurrence kept.
func refUserIDs(q string) (ids []int64, malformed bool) {
	if strings.TrimSpace(q) == "" {
		return nil, true
	}
	seen := map[int64]bool{}
	for _, part := range strings.Split(q, ",") {
		part = strings.TrimSpace(part)
		if part == "" || strings.Trim(part, "0123456789") != "" {
			return nil, true
		}
		n, err := strconv.ParseUint(part, 10, 64)
		if err != nil || n == 0 || n > math.MaxInt64 {
			return nil, true
		}
		if !seen[int64(n)] {
			seen[int64(n)] = true
			ids = append(ids, int64(n))
		}
	}
	return ids, false
}

func FuzzParseUserIDs(f *testing.F) {
	for _, s := range []string{"1", "1,2,3", " 1 , 2 ", "3,1,3", "", " ", "+5", "0", "-1", "1,,2", "1,", "abc",
		"9223372036854775807", "9223372036854775808", "007", "1 2", "１", "\u00a01\u00a0", joinIDs(idsUpTo(51)),
		joinIDs(idsUpTo(50)) + ",50", joinIDs(idsUpTo(51)) + ",x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		got, err := parseUserIDs(q)
		want, malformed := refUserIDs(q)
		var v errValidation
		switch {
		case malformed:
			if !errors.As(err, &v) || v == "" {
				t.Fatalf("parseUserIDs(%q) = %v, %v; want a 422", q, got, err)
			}
		case len(want) > MaxBatchIDs:
			if !errors.Is(err, errTooManyIDs) {
				t.Fatalf("parseUserIDs(%q) = %v, %v; want errTooManyIDs", q, got, err)
			}
		default:
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("parseUserIDs(%q) = %v, %v; want %v", q, got, err, want)
			}
		}
	})
}

func FuzzParseStatusUpdate(f *testing.F) {
	for _, s := range []string{
		`{"is_online": true}`, `{"is_busy": false}`, `{"busy_until": null}`, `{}`, `[]`, `null`, ``, `{`,
		`{"is_online": null}`, `{"is_busy": "x"}`, `{"busy_until": 5}`,
		`{"is_busy": true, "busy_until": "2025-03-01T13:00:00Z"}`,
		`{"busy_until": "2025-03-01T13:00:00"}`, `{"busy_until": "2025-03-01T11:00:00Z"}`,
		`{"is_busy": false, "busy_until": "2020-01-01T00:00:00Z"}`,
		`{"busy_until": "2025-03-01T14:30:00.123+02:00"}`, `{"x": 1}`, `{"is_online": true} {}`,
		"{\"is_online\": true, \"\xff\": 1}",
	} {
		f.Add([]byte(s))
	}
	nowUS := parseNow.UnixMicro()
	f.Fuzz(func(t *testing.T, body []byte) {
		u, err := parseStatusUpdate(body, parseNow)
		if err != nil {
			var v errValidation
			switch {
			case errors.As(err, &v):
				if v == "" || u != nil {
					t.Fatalf("422 with empty detail or a result: %v, %q", u, v)
				}
			case errors.Is(err, errNoFields):
				var m map[string]json.RawMessage
				if json.Unmarshal(body, &m) != nil {
					t.Fatalf("errNoFields for a body that is not a JSON object: %q", body)
				}
				for _, k := range []string{"is_online", "is_busy", "busy_until"} {
					if _, ok := m[k]; ok {
						t.Fatalf("errNoFields for %q, which has %s", body, k)
					}
				}
			default:
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			return
		}
		trimmed := bytes.TrimLeft(body, " \t\r\n")
		if !json.Valid(body) || len(trimmed) == 0 || trimmed[0] != '{' {
			t.Fatalf("accepted a body that is not a JSON object: %q", body)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		if !u.SetOnline && !u.SetBusy && !u.SetBusyUntil {
			t.Fatalf("accepted %q with no field set", body)
		}
		checkBool := func(name string, set, val bool) {
			raw, ok := m[name]
			if ok != set {
				t.Fatalf("%q: %s present=%v but set=%v", body, name, ok, set)
			}
			if !ok {
				if val {
					t.Fatalf("%q: %s value without the field", body, name)
				}
				return
			}
			var b bool
			if err := json.Unmarshal(raw, &b); err != nil || string(bytes.TrimSpace(raw)) == "null" || b != val {
				t.Fatalf("%q: %s = %s parsed as %v", body, name, raw, val)
			}
		}
		checkBool("is_online", u.SetOnline, u.IsOnline)
		checkBool("is_busy", u.SetBusy, u.IsBusy)
		raw, ok := m["busy_until"]
		if ok != u.SetBusyUntil {
			t.Fatalf("%q: busy_until present=%v but set=%v", body, ok, u.SetBusyUntil)
		}
		if !ok {
			if u.BusyUntil != 0 {
				t.Fatalf("%q: busy_until value without the field", body)
			}
			return
		}
		clearing := u.SetBusy && !u.IsBusy
		isNull := string(bytes.TrimSpace(raw)) == "null"
		switch {
		case isNull && u.BusyUntil != 0:
			t.Fatalf("%q: null busy_until parsed as %d", body, u.BusyUntil)
		case !isNull && u.BusyUntil == 0 && !clearing:
			t.Fatalf("%q: busy_until %s treated as null", body, raw)
		case !isNull && !clearing && u.BusyUntil <= nowUS:
			t.Fatalf("%q: accepted busy_until %d not after now %d", body, u.BusyUntil, nowUS)
		}
	})
}

func BenchmarkParseUserIDs50(b *testing.B) {
	q := joinIDs(idsUpTo(50))
	b.ReportAllocs()
	for b.Loop() {
		ids, err := parseUserIDs(q)
		if err != nil || len(ids) != 50 {
			b.Fatal(fmt.Sprint(ids, err))
		}
	}
}
