package api

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/presence-cluster/presence/messages"
)

func idList(from, n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = strconv.Itoa(from + i)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func TestParseVisibilityUpdate(t *testing.T) {
	const (
		everyone  = messages.VisibilityMode_VISIBILITY_MODE_EVERYONE
		nobody    = messages.VisibilityMode_VISIBILITY_MODE_NOBODY
		allowlist = messages.VisibilityMode_VISIBILITY_MODE_ALLOWLIST
	)
	tests := []struct {
		name string
		body string
		want *messages.SetVisibility
		// detail of the 422; "" with want nil means errNoVisibilityFields.
		detail string
	}{
		{"all fields", `{"presence":"allowlist","last_seen":"nobody","allow":[9,3,3,5]}`,
			&messages.SetVisibility{SetPresence: true, Presence: allowlist, SetLastSeen: true, LastSeen: nobody, SetAllow: true, Allow: []int64{3, 5, 9}}, ""},
		{"presence only", `{"presence":"everyone"}`, &messages.SetVisibility{SetPresence: true, Presence: everyone}, ""},
		{"last_seen only", `{"last_seen":"allowlist"}`, &messages.SetVisibility{SetLastSeen: true, LastSeen: allowlist}, ""},
		{"empty allow clears", `{"allow":[]}`, &messages.SetVisibility{SetAllow: true, Allow: []int64{}}, ""},
		{"1000 ids", `{"allow":` + idList(1, 1000) + `}`, nil, ""},
		{"1001 ids with a duplicate are 1000", `{"allow":` + strings.TrimSuffix(idList(1, 1000), "]") + `,1]}`, nil, ""},
		{"unknown fields ignored", `{"presence":"nobody","extra":1}`, &messages.SetVisibility{SetPresence: true, Presence: nobody}, ""},
		{"empty object", `{}`, nil, ""},
		{"only unknown fields", `{"mode":"nobody"}`, nil, ""},
		{"array body", `[]`, nil, "Request body must be a JSON object"},
		{"string body", `"nobody"`, nil, "Request body must be a JSON object"},
		{"empty body", ``, nil, "Request body must be a JSON object"},
		{"broken JSON", `{"presence":`, nil, "Request body is not valid JSON"},
		{"unknown presence mode", `{"presence":"friends"}`, nil, `presence must be one of "everyone", "nobody", "allowlist"`},
		{"presence wrong case", `{"presence":"Everyone"}`, nil, `presence must be one of "everyone", "nobody", "allowlist"`},
		{"presence null", `{"presence":null}`, nil, `presence must be one of "everyone", "nobody", "allowlist"`},
		{"presence number", `{"presence":1}`, nil, `presence must be one of "everyone", "nobody", "allowlist"`},
		{"unknown last_seen mode", `{"last_seen":"some"}`, nil, `last_seen must be one of "everyone", "nobody", "allowlist"`},
		{"last_seen bool", `{"last_seen":true}`, nil, `last_seen must be one of "everyone", "nobody", "allowlist"`},
		{"1001 ids", `{"allow":` + idList(1, 1001) + `}`, nil, detailVisibilityLimit},
		{"zero id", `{"allow":[1,0]}`, nil, detailVisibilityAllow},
		{"negative id", `{"allow":[-1]}`, nil, detailVisibilityAllow},
		{"fraction", `{"allow":[1.5]}`, nil, detailVisibilityAllow},
		{"exponent", `{"allow":[1e3]}`, nil, detailVisibilityAllow},
		{"string id", `{"allow":["5"]}`, nil, detailVisibilityAllow},
		{"out of range id", `{"allow":[9223372036854775808]}`, nil, detailVisibilityAllow},
		{"allow not an array", `{"allow":5}`, nil, detailVisibilityAllow},
		{"allow null", `{"allow":null}`, nil, detailVisibilityAllow},
		{"allow object", `{"allow":{"1":true}}`, nil, detailVisibilityAllow},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseVisibilityUpdate([]byte(tc.body))
			var v errValidation
			switch {
			case tc.detail != "":
				if !errors.As(err, &v) || string(v) != tc.detail {
					t.Fatalf("err = %v, want 422 %q", err, tc.detail)
				}
			case tc.want != nil:
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if got.SetPresence != tc.want.SetPresence || got.Presence != tc.want.Presence ||
					got.SetLastSeen != tc.want.SetLastSeen || got.LastSeen != tc.want.LastSeen ||
					got.SetAllow != tc.want.SetAllow || !slices.Equal(got.Allow, tc.want.Allow) || (got.SetAllow && got.Allow == nil) {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			case strings.Contains(tc.name, "1000") || strings.Contains(tc.name, "1001"):
				if err != nil || len(got.GetAllow()) != 1000 || !slices.IsSorted(got.GetAllow()) {
					t.Fatalf("got %d ids, err %v; want 1000 sorted", len(got.GetAllow()), err)
				}
			default:
				if !errors.Is(err, errNoVisibilityFields) {
					t.Fatalf("err = %v, want errNoVisibilityFields", err)
				}
			}
		})
	}
}
