package loadgen

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/presence-cluster/presence/internal/loadgen/stats"
)

// StormSummary is the reconnect storm's outcome: how fast the cut-off
// sessions came back, what refused them meanwhile, what the store wrote,
// and the checks (every session back and subscribed, no update lost, no
// offline flap).
type StormSummary struct {
	DrainURL   string    `json:"drain_url"`
	DrainAt    time.Time `json:"drain_at"`
	DrainError string    `json:"drain_error,omitempty"`
	// OnDrained is how many sessions connected to the draining node;
	// CutOff how many connections ended after the drain began; Back how
	// many of those sessions were subscribed again.
	OnDrained int   `json:"sessions_on_drained_node"`
	CutOff    int64 `json:"cut_off"`
	Back      int64 `json:"back"`
	NotBack   int64 `json:"not_back"`
	// AllBackS is from the drain to the last cut-off session subscribed
	// again on the connection it held to the end (the drain's own wait
	// included); BackP50S and BackP99S are that time per session.
	AllBackS float64 `json:"all_back_s"`
	BackP50S float64 `json:"back_p50_s"`
	BackP99S float64 `json:"back_p99_s"`
	TargetS  float64 `json:"target_s"`
	// Handshake is the handshakes begun after the drain.
	Handshake stats.Latency `json:"reconnect_handshake"`
	// Closes1013 counts connections closed with 1013 after the drain;
	// OtherRefusals the refused handshakes, failed dials and other closes
	// (1012 from the drain itself excluded); Refusals has them by kind.
	Closes1013    int64            `json:"closes_1013"`
	OtherRefusals int64            `json:"other_refusals"`
	Refusals      map[string]int64 `json:"refusals,omitempty"`
	Store         StormStore       `json:"store"`
	// SubscribedAtEnd sessions had their contacts' newest versions
	// compared with the current ones read by REST at the end: Stale of
	// Compared were older (an update lost), Ahead newer (the user changed
	// after the read: not judged).
	SubscribedAtEnd int64 `json:"subscribed_at_end"`
	// StaleAtRead were stale when the current versions were read;
	// CurrentAfterS is how long after that every session had them all
	// (-1: not within 10 s, and the rest count as Stale: lost).
	StaleAtRead       int64             `json:"versions_stale_at_read"`
	Ahead             int64             `json:"versions_ahead_of_read"`
	CurrentAfterS     float64           `json:"current_after_read_s"`
	Compared          int64             `json:"versions_compared"`
	Stale             int64             `json:"versions_stale"`
	StaleExamples     []VersionMismatch `json:"stale_examples,omitempty"`
	VersionReadFailed int               `json:"version_read_failed,omitempty"`
	// GraceS is the disconnect grace; Flaps are users that were connected
	// at the drain, came back within the grace (or were never cut off),
	// and were seen offline by some session.
	GraceS       float64      `json:"disconnect_grace_s"`
	OfflineSeen  int          `json:"users_seen_offline"`
	Flaps        int          `json:"offline_flaps"`
	FlapExamples []Flap       `json:"flap_examples,omitempty"`
	Checks       []StormCheck `json:"checks"`
	Pass         bool         `json:"pass"`
}

// StormStore is the staying nodes' store calls from the drain until every
// session was back (or a minute after the steady phase).
type StormStore struct {
	WindowS         float64 `json:"window_s"`
	WritesPerS      float64 `json:"writes_per_s"`
	PeakWritesPerS  float64 `json:"peak_writes_per_s"`
	SavesPerS       float64 `json:"saves_per_s"`
	TouchesPerS     float64 `json:"last_seen_flushes_per_s"`
	LoadsPerS       float64 `json:"loads_per_s"`
	FlapsSuppressed float64 `json:"flaps_suppressed"`
	ScrapeErrors    int     `json:"scrape_errors,omitempty"`
}

// Flap is a user seen offline who should not have been.
type Flap struct {
	UserID int64 `json:"user_id"`
	// SeenOfflineS is when, after the drain, a session saw it offline;
	// BackS when its own session was subscribed again (-1: never cut off).
	SeenOfflineS float64 `json:"seen_offline_s"`
	BackS        float64 `json:"back_s"`
}

// StormCheck is one invariant of the storm.
type StormCheck struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// stormEvidence is what the workers saw, merged.
type stormEvidence struct {
	sessions []stormSession
	offline  map[int]int64 // user -> first seen offline (unix ns)
	down     map[int]bool  // sessions not subscribed when the drain began
}

const maxFlapExamples = 10

// findFlaps lists the users seen offline after the drain although they
// were connected when it began and either were never cut off or were
// subscribed again within grace of being cut off. Users whose session
// stayed away longer than the grace are offline by design.
func findFlaps(ev stormEvidence, t Topology, drainAt int64, grace time.Duration) []Flap {
	cut := make(map[int]stormSession, len(ev.sessions))
	for _, s := range ev.sessions {
		cut[s.S] = s
	}
	var out []Flap
	for _, u := range slices.Sorted(maps.Keys(ev.offline)) {
		if ev.down[u] {
			continue
		}
		f := Flap{UserID: t.userID(u), SeenOfflineS: secondsSince(drainAt, ev.offline[u]), BackS: -1}
		if s, ok := cut[u]; ok {
			if s.Back == 0 || time.Duration(s.Back-s.Gone) > grace {
				continue
			}
			f.BackS = secondsSince(drainAt, s.Back)
		}
		out = append(out, f)
	}
	return out
}

// stormChecks judges the summary: the drain happened, every cut-off
// session came back (within the target), every session is subscribed at
// the end, no update was lost, no user flapped offline.
func stormChecks(s *StormSummary, sessions int) []StormCheck {
	return []StormCheck{
		{"drained", s.DrainError == "" && s.CutOff >= int64(s.OnDrained) && s.CutOff > 0,
			fmt.Sprintf("%d of the %d sessions on %s cut off%s", s.CutOff, s.OnDrained, s.DrainURL, errSuffix(s.DrainError))},
		{"all back", s.CutOff > 0 && s.NotBack == 0, fmt.Sprintf("%d of %d cut-off sessions subscribed again", s.Back, s.CutOff)},
		{"within target", s.CutOff > 0 && s.NotBack == 0 && s.AllBackS <= s.TargetS,
			fmt.Sprintf("all back %.2fs after the drain (target %.0fs)", s.AllBackS, s.TargetS)},
		{"all subscribed at end", s.SubscribedAtEnd == int64(sessions), fmt.Sprintf("%d of %d", s.SubscribedAtEnd, sessions)},
		{"no update lost", s.Stale == 0 && s.VersionReadFailed == 0 && s.Compared > 0,
			fmt.Sprintf("%d of %d (session, contact) versions differ from the current ones (%d users unread)", s.Stale, s.Compared, s.VersionReadFailed)},
		{"no offline flap", s.Flaps == 0, fmt.Sprintf("%d users seen offline who came back within the %.0fs grace or were never cut off (%d seen offline in all)", s.Flaps, s.GraceS, s.OfflineSeen)},
	}
}

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return "; " + e
}

func secondsSince(from, at int64) float64 { return stats.Round3(float64(at-from) / 1e9) }
