package cluster

import (
	"encoding/json"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// Meta is what a member advertises in its memberlist metadata.
// memberlist refuses metadata over memberlist.MetaMaxSize (512 bytes), so
// keys are short.
type Meta struct {
	NodeName   string `json:"n"`
	RemoteAddr string `json:"r"`
	HTTPAddr   string `json:"h"`
	Store      string `json:"s"`
	Draining   bool   `json:"d,omitempty"`
	// Proto is the message protocol version, for rolling upgrades.
	Proto int `json:"p"`
}

// ProtoVersion rises when the Envelope gains cases older nodes must know.
// A node sends a member a newer kind only if the member's advertised
// version knows it, so a rolling upgrade never waits on an ignored message.
//
//	1: the first release
//	2: GetPresenceBatch / PresenceBatchReply (batch presence reads)
//	3: Inspect / Inspection (admin inspection), DisconnectUser /
//	   DisconnectCount (admin disconnect), CleanupPreview (dry-run admin
//	   cleanups), GetVisibility / SetVisibility (per-viewer visibility)
const ProtoVersion = 3

// ProtoBatchReads is the first version that answers GetPresenceBatch.
const ProtoBatchReads = 2

// ProtoV3 is the first version that answers Inspect, DisconnectUser,
// CleanupPreview, GetVisibility and SetVisibility.
const ProtoV3 = 3

func (m Meta) encode() ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("node metadata is %d bytes, over memberlist's %d: shorten the node name or the addresses", len(b), memberlist.MetaMaxSize)
	}
	return b, nil
}

func decodeMeta(b []byte) (Meta, error) {
	var m Meta
	if len(b) == 0 {
		return m, fmt.Errorf("empty metadata")
	}
	err := json.Unmarshal(b, &m)
	return m, err
}
