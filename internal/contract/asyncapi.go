package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/presence-cluster/presence/docs"
)

// asyncAPIURL names the AsyncAPI document inside the schema compiler.
const asyncAPIURL = "mem:///docs/asyncapi.json"

// asyncAPI holds one compiled payload schema per frame type.
type asyncAPI struct {
	// frames maps a frame's "type" to its message's payload schema.
	frames map[string]*jsonschema.Schema
	// send and receive are the frame types of the node's send and receive
	// operations.
	send, receive []string
}

// asyncDoc is the part of an AsyncAPI 3 document the checker reads.
type asyncDoc struct {
	AsyncAPI   string `json:"asyncapi"`
	Operations map[string]struct {
		Action   string              `json:"action"`
		Messages []map[string]string `json:"messages"`
	} `json:"operations"`
	Channels map[string]struct {
		Messages map[string]map[string]string `json:"messages"`
	} `json:"channels"`
	Components struct {
		Messages map[string]struct {
			Name    string `json:"name"`
			Payload struct {
				Ref        string `json:"$ref"`
				Properties struct {
					Type struct {
						Const string `json:"const"`
					} `json:"type"`
				} `json:"properties"`
			} `json:"payload"`
		} `json:"messages"`
	} `json:"components"`
}

func loadAsyncAPI() (*asyncAPI, error) {
	var raw any
	if err := yaml.Unmarshal(docs.AsyncAPI, &raw); err != nil {
		return nil, fmt.Errorf("parse docs/asyncapi.yaml: %w", err)
	}
	// Through JSON, so YAML's types become the ones JSON Schema knows.
	js, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("docs/asyncapi.yaml as JSON: %w", err)
	}
	var d asyncDoc
	if err := json.Unmarshal(js, &d); err != nil {
		return nil, fmt.Errorf("read docs/asyncapi.yaml: %w", err)
	}
	if d.AsyncAPI != "3.0.0" {
		return nil, fmt.Errorf("docs/asyncapi.yaml: asyncapi %q, want 3.0.0", d.AsyncAPI)
	}
	tree, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		return nil, fmt.Errorf("docs/asyncapi.yaml as JSON: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7) // AsyncAPI schemas are a superset of draft-07
	if err := c.AddResource(asyncAPIURL, tree); err != nil {
		return nil, fmt.Errorf("docs/asyncapi.yaml: %w", err)
	}
	a := &asyncAPI{frames: map[string]*jsonschema.Schema{}}
	for key, m := range d.Components.Messages {
		sch, err := c.Compile(asyncAPIURL + "#/components/messages/" + key + "/payload")
		if err != nil {
			return nil, fmt.Errorf("docs/asyncapi.yaml: message %s: %w", key, err)
		}
		if m.Name == "" {
			return nil, fmt.Errorf("docs/asyncapi.yaml: message %s has no name (the frame type)", key)
		}
		a.frames[m.Name] = sch
	}
	if err := a.readOperations(&d); err != nil {
		return nil, err
	}
	return a, nil
}

// readOperations collects the frame types of the send and receive
// operations, following their message references.
func (a *asyncAPI) readOperations(d *asyncDoc) error {
	const prefix = "#/channels/presence/messages/"
	ch, ok := d.Channels["presence"]
	if !ok {
		return errors.New("docs/asyncapi.yaml: no channel presence")
	}
	for opName, op := range d.Operations {
		for _, ref := range op.Messages {
			key, found := bytes.CutPrefix([]byte(ref["$ref"]), []byte(prefix))
			if !found {
				return fmt.Errorf("docs/asyncapi.yaml: operation %s: message %q not in channel presence", opName, ref["$ref"])
			}
			target := ch.Messages[string(key)]["$ref"]
			msg, ok := d.Components.Messages[string(bytes.TrimPrefix([]byte(target), []byte("#/components/messages/")))]
			if !ok {
				return fmt.Errorf("docs/asyncapi.yaml: channel message %s: no component %q", key, target)
			}
			switch op.Action {
			case "send":
				a.send = append(a.send, msg.Name)
			case "receive":
				a.receive = append(a.receive, msg.Name)
			default:
				return fmt.Errorf("docs/asyncapi.yaml: operation %s: action %q", opName, op.Action)
			}
		}
	}
	sort.Strings(a.send)
	sort.Strings(a.receive)
	return nil
}

// checkFrame validates one frame against the message of its type.
func (a *asyncAPI) checkFrame(frame []byte) error {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(frame, &head); err != nil {
		return fmt.Errorf("frame is not a JSON object: %w: %s", err, clip(frame))
	}
	sch, ok := a.frames[head.Type]
	if !ok {
		return fmt.Errorf("frame type %q is not in docs/asyncapi.yaml: %s", head.Type, clip(frame))
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(frame))
	if err != nil {
		return fmt.Errorf("frame is not JSON: %w: %s", err, clip(frame))
	}
	if err := sch.Validate(v); err != nil {
		// %#v lists every failing keyword with its place, not only the
		// schema that failed.
		return fmt.Errorf("%s frame against docs/asyncapi.yaml: %#v\nframe: %s", head.Type, err, clip(frame))
	}
	return nil
}
