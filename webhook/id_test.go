package webhook

import (
	"strings"
	"testing"
)

func TestMessageIDsDiffer(t *testing.T) {
	a, b := newMessageID(), newMessageID()
	if a == b || !strings.HasPrefix(a, "msg_") || len(a) != len("msg_")+22 {
		t.Fatalf("ids %q %q", a, b)
	}
}
