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
