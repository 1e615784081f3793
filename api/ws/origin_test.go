package ws

import "testing"

func TestParseOrigins(t *testing.T) {
	for _, tc := range []struct {
		list []string
		ok   bool
	}{
		{nil, true},
		{[]string{"*"}, true},
		{[]string{"https://app.example.com", "http://127.0.0.1:3000"}, true},
		{[]string{"https://app.example.com/"}, false},
		{[]string{"https://app.example.com/path"}, false},
		{[]string{"app.example.com"}, false},
		{[]string{"ftp://app.example.com"}, false},
		{[]string{"https://user@app.example.com"}, false},
		{[]string{"https://"}, false},
	} {
		if _, err := ParseOrigins(tc.list); (err == nil) != tc.ok {
			t.Errorf("ParseOrigins(%q) = %v, want ok=%v", tc.list, err, tc.ok)
		}
	}
}

func TestOriginsAllows(t *testing.T) {
	o, err := ParseOrigins([]string{"https://App.Example.com", "http://127.0.0.1:3000"})
	if err != nil {
		t.Fatal(err)
	}
	for origin, want := range map[string]bool{
		"https://app.example.com":      true,
		"HTTPS://APP.EXAMPLE.COM":      true,
		"http://127.0.0.1:3000":        true,
		"http://127.0.0.1:3001":        false,
		"http://app.example.com":       false,
		"https://app.example.com.evil": false,
		"null":                         false,
		"":                             true, // not a browser
	} {
		if got := o.Allows(origin); got != want {
			t.Errorf("Allows(%q) = %v, want %v", origin, got, want)
		}
	}
	if o.Listed("") {
		t.Error("no Origin is not listed")
	}
	var none *Origins
	if !none.Allows("https://any.example") || none.Listed("https://any.example") {
		t.Error("a nil list allows every origin and lists none")
	}
	any, _ := ParseOrigins([]string{"*"})
	if !any.Listed("https://any.example") || !any.Any() {
		t.Error("* lists every origin")
	}
}

// A page the node served itself (its dashboard) may open a WebSocket to it
// whatever the list says; a page of another host may not.
func TestOriginsAllowsHandshake(t *testing.T) {
	o, err := ParseOrigins([]string{"https://app.example"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		origin, host string
		want         bool
	}{
		{"https://app.example", "presence.example:8000", true},
		{"http://presence.example:8000", "presence.example:8000", true},
		{"https://Presence.Example:8000", "presence.example:8000", true},
		{"https://evil.example", "presence.example:8000", false},
		{"http://presence.example", "presence.example:8000", false},
		{"ftp://presence.example:8000", "presence.example:8000", false},
		{"https://evil.example", "", false},
		{"", "presence.example:8000", true},
	} {
		if got := o.AllowsHandshake(c.origin, c.host); got != c.want {
			t.Errorf("AllowsHandshake(%q, %q) = %v, want %v", c.origin, c.host, got, c.want)
		}
	}
}
