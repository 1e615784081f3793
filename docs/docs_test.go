package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// documents are the Markdown files whose links must resolve, relative to
// the repository root (docs/*.md is added by the test).
var documents = []string{"README.md", "SECURITY.md", "BENCHMARKS.md", "deploy/README.md"}

var (
	linkRe    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	headingRe = regexp.MustCompile(`(?m)^#{1,6}\s+(.+?)\s*#*\s*$`)
	fenceRe   = regexp.MustCompile("(?ms)^```.*?^```")
	codeRe    = regexp.MustCompile("`[^`\n]*`")
)

// TestLinksResolve checks that every relative link in the project's
// Markdown names a file of the repository (and, for a Markdown target, an
// existing heading), and that nothing points outside it.
func TestLinksResolve(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	files := append([]string(nil), documents...)
	mds, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if len(mds) == 0 {
		t.Fatal("no docs/*.md")
	}
	for _, m := range mds {
		rel, _ := filepath.Rel(root, m)
		files = append(files, rel)
	}
	for _, f := range files {
		text := read(t, filepath.Join(root, f))
		// The product's design notes live beside the repository, not in
		// it: no document may point there. (Spelled in two parts so this
		// file does not match the same grep the CI hook runs.)
		if outside := ".." + "/shared"; strings.Contains(text, outside) {
			t.Errorf("%s refers to %s, which is not in the repository", f, outside)
		}
		for _, m := range linkRe.FindAllStringSubmatch(stripCode(text), -1) {
			if err := checkLink(root, f, m[1]); err != "" {
				t.Errorf("%s: link %s: %s", f, m[1], err)
			}
		}
	}
}

// checkLink returns why target, linked from file, does not resolve ("" if
// it does).
func checkLink(root, file, target string) string {
	if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
		return ""
	}
	path, anchor, _ := strings.Cut(target, "#")
	dest := filepath.Join(root, file)
	if path != "" {
		dest = filepath.Join(filepath.Dir(dest), path)
	}
	rel, err := filepath.Rel(root, dest)
	if err != nil || strings.HasPrefix(rel, "..") {
		return "points outside the repository"
	}
	if _, err := os.Stat(dest); err != nil {
		return "no such file"
	}
	if anchor == "" || !strings.HasSuffix(dest, ".md") {
		return ""
	}
	b, err := os.ReadFile(dest)
	if err != nil {
		return err.Error()
	}
	if !anchors(string(b))[anchor] {
		return "no heading with anchor #" + anchor + " in " + rel
	}
	return ""
}

// anchors returns the anchors GitHub gives the headings of a Markdown text.
func anchors(text string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, m := range headingRe.FindAllStringSubmatch(fenceRe.ReplaceAllString(text, ""), -1) {
		slug := slugify(m[1])
		if n := seen[slug]; n > 0 {
			out[slug+"-"+strconv.Itoa(n)] = true
		} else {
			out[slug] = true
		}
		seen[slug]++
	}
	return out
}

// slugify is GitHub's heading anchor: lower case, punctuation dropped,
// spaces to hyphens.
func slugify(h string) string {
	h = strings.NewReplacer("`", "", "*", "").Replace(h)
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// stripCode drops fenced blocks and inline code, whose brackets are not
// links.
func stripCode(text string) string {
	return codeRe.ReplaceAllString(fenceRe.ReplaceAllString(text, ""), "")
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSlugify pins the anchor rule on headings used in the docs.
func TestSlugify(t *testing.T) {
	for in, want := range map[string]string{
		"State rules in one screen":     "state-rules-in-one-screen",
		"Status (your own record)":      "status-your-own-record",
		"GET /users/{user_id}/presence": "get-usersuser_idpresence",
		"`presence_update` frames":      "presence_update-frames",
	} {
		if got := slugify(in); got != want {
			t.Errorf("slugify(%q) = %q, want %q", in, got, want)
		}
	}
}
