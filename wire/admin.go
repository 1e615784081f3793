package wire

import (
	"strconv"
	"time"

	"github.com/presence-cluster/presence/messages"
)

// UserInspection is GET /admin/users/{id}: the user's true record (the
// status record's fields plus username), the node that owns the user, how
// many hubs (one per node with subscribed sessions) watch the user and how
// many open WebSocket sessions of the user hold it online.
type UserInspection struct {
	UserID    int64      `json:"user_id"`
	Username  string     `json:"username"`
	IsOnline  bool       `json:"is_online"`
	IsBusy    bool       `json:"is_busy"`
	BusyUntil *time.Time `json:"busy_until"`
	LastSeen  *time.Time `json:"last_seen"`
	CreatedAt *time.Time `json:"created_at"`
	UpdatedAt *time.Time `json:"updated_at"`
	Version   uint64     `json:"version"`
	Owner     string     `json:"owner"`
	Watchers  int32      `json:"watchers"`
	Sessions  int32      `json:"sessions"`
	// Visibility is the user's setting (who sees their presence and
	// last_seen); the inspection itself is the true record.
	Visibility VisibilitySetting `json:"visibility"`
}

// AppendInspection appends the UserInspection of in.
func AppendInspection(b []byte, in *messages.Inspection) []byte {
	s := in.GetState()
	b = append(b, `{"user_id":`...)
	b = strconv.AppendInt(b, s.GetUserId(), 10)
	b = append(b, `,"username":`...)
	b = appendString(b, s.GetUsername())
	b = appendState(b, s)
	b = append(b, `,"created_at":`...)
	b = appendTime(b, s.GetCreatedAt())
	b = append(b, `,"updated_at":`...)
	b = appendTime(b, s.GetUpdatedAt())
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, s.GetVersion(), 10)
	b = append(b, `,"owner":`...)
	b = appendString(b, in.GetNode())
	b = append(b, `,"watchers":`...)
	b = strconv.AppendInt(b, int64(in.GetWatchers()), 10)
	b = append(b, `,"sessions":`...)
	b = strconv.AppendInt(b, int64(in.GetSessions()), 10)
	b = append(b, `,"visibility":`...)
	b = AppendVisibilitySetting(b, s.GetVisibility())
	return append(b, '}')
}

// NodeCounters is one member in GET /admin/stats. Counters are cumulative
// since the node started: a reader takes rates from two samples. A member
// that did not answer has only the identifying fields and Error.
type NodeCounters struct {
	Name     string `json:"name"`
	NodeName string `json:"node_name"`
	Self     bool   `json:"self"`
	Error    string `json:"error,omitempty"`

	StartedAt                  *time.Time `json:"started_at"`
	ActorsActive               int64      `json:"actors_active"`
	SessionsOpen               int64      `json:"sessions_open"`
	HTTPRequests               int64      `json:"http_requests_total"`
	HTTPClientErrors           int64      `json:"http_client_errors_total"`
	HTTPServerErrors           int64      `json:"http_server_errors_total"`
	OfflinePushDelayCount      int64      `json:"offline_push_delay_count"`
	OfflinePushDelaySumSeconds float64    `json:"offline_push_delay_sum_seconds"`
	FlapsSuppressed            int64      `json:"flaps_suppressed_total"`
	Ghosts                     int64      `json:"ghosts_total"`
	CPUSeconds                 float64    `json:"cpu_seconds_total"`
	Goroutines                 int64      `json:"goroutines"`
	HeapBytes                  int64      `json:"heap_bytes"`
}

// ClusterStats is GET /admin/stats: every member of the asked node's view
// with its counters, sampled at Time.
type ClusterStats struct {
	Node    string         `json:"node"`
	Time    time.Time      `json:"time"`
	Members []NodeCounters `json:"members"`
}

// SetCounters copies st's counters into c.
func (c *NodeCounters) SetCounters(st *messages.NodeStats) {
	if us := st.GetStartedAt(); us != 0 {
		t := time.UnixMicro(us).UTC()
		c.StartedAt = &t
	}
	c.ActorsActive = st.GetActiveActors()
	c.SessionsOpen = st.GetSessionsOpen()
	c.HTTPRequests = st.GetHttpRequests()
	c.HTTPClientErrors = st.GetHttpClientErrors()
	c.HTTPServerErrors = st.GetHttpServerErrors()
	c.OfflinePushDelayCount = st.GetOfflinePushDelayCount()
	c.OfflinePushDelaySumSeconds = st.GetOfflinePushDelaySumSeconds()
	c.FlapsSuppressed = st.GetFlapsSuppressed()
	c.Ghosts = st.GetGhosts()
	c.CPUSeconds = st.GetCpuSeconds()
	c.Goroutines = st.GetGoroutines()
	c.HeapBytes = st.GetHeapBytes()
}
