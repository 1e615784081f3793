package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/presence-cluster/presence/api/ws"
	"github.com/presence-cluster/presence/node"
)

// Each value kind parses one setting, refuses values out of its range
// (so a mistake stops the start with the variable's name instead of
// silently becoming a default), and names its type for -h.

// show is a value's String: *p formatted by format, or "" for the zero
// value (nil p) the flag package makes to tell whether a default is worth
// printing in -h.
func show[T any](p *T, format func(T) string) string {
	if p == nil {
		return ""
	}
	return format(*p)
}

// durRule is the range a duration setting accepts.
type durRule int

const (
	// positive: > 0 (the library would silently take its default for 0).
	positive durRule = iota
	// zeroMeansOff: >= 0, where 0 turns the feature off.
	zeroMeansOff
	// zeroMeansNone: >= 0, where 0 means none; the library's "none" is a
	// negative value (its zero is the default), so 0 is stored as
	// node.NoJWTLeeway.
	zeroMeansNone
)

type durationValue struct {
	p    *time.Duration
	rule durRule
}

func (d durationValue) Type() string { return "duration" }
func (d durationValue) String() string {
	if d.p == nil {
		return ""
	}
	switch {
	case *d.p < 0 && d.rule == zeroMeansNone:
		return "0s"
	case *d.p == 0 && d.rule == zeroMeansOff:
		return "" // shown as what off means, from the usage
	}
	return d.p.String()
}
func (d durationValue) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("want a Go duration such as 90s or 5m")
	}
	switch {
	case d.rule == positive && v <= 0:
		return errors.New("want a positive duration such as 90s or 5m")
	case v < 0:
		return errors.New("want a duration of 0s or more")
	case v == 0 && d.rule == zeroMeansNone:
		v = node.NoJWTLeeway
	}
	*d.p = v
	return nil
}

type stringValue struct{ p *string }

func (v stringValue) Type() string       { return "string" }
func (v stringValue) String() string     { return show(v.p, func(s string) string { return s }) }
func (v stringValue) Set(s string) error { *v.p = s; return nil }

// secretValue is an HS256 secret: at least min bytes.
type secretValue struct {
	p   *string
	min int
}

func (v secretValue) Type() string   { return "string" }
func (v secretValue) String() string { return stringValue{v.p}.String() }
func (v secretValue) Set(s string) error {
	if len(s) < v.min {
		return fmt.Errorf("an HS256 secret must be at least %d bytes (this one has %d): generate one with `openssl rand -base64 32`", v.min, len(s))
	}
	*v.p = s
	return nil
}

type boolValue struct{ p *bool }

func (v boolValue) Type() string   { return "bool" }
func (v boolValue) String() string { return show(v.p, strconv.FormatBool) }
func (v boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want true or false")
	}
	*v.p = b
	return nil
}
func (v boolValue) IsBoolFlag() bool { return true }

// rateValue is a rate per second; negativeOff allows a negative value
// meaning "no limit". Zero is refused: the library would read it as the
// default.
type rateValue struct {
	p           *float64
	negativeOff bool
}

func (v rateValue) Type() string { return "number" }
func (v rateValue) String() string {
	return show(v.p, func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) })
}
func (v rateValue) Set(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil:
		return fmt.Errorf("want a number")
	case f < 0 && v.negativeOff:
	case f <= 0 && v.negativeOff:
		return fmt.Errorf("want a positive rate, or a negative one for no limit")
	case f <= 0:
		return fmt.Errorf("want a positive rate")
	}
	*v.p = f
	return nil
}

type listValue struct{ p *[]string }

func (v listValue) Type() string { return "list" }
func (v listValue) String() string {
	return show(v.p, func(l []string) string { return strings.Join(l, ",") })
}
func (v listValue) Set(s string) error {
	*v.p = (*v.p)[:0]
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*v.p = append(*v.p, part)
		}
	}
	return nil
}

// sizeValue is a count or byte size within [min, max]: a number with an
// optional KiB/MiB/KB/MB/B suffix.
type sizeValue struct {
	p        *int
	min, max int
}

func (v sizeValue) Type() string   { return "size" }
func (v sizeValue) String() string { return show(v.p, strconv.Itoa) }
func (v sizeValue) Set(s string) error {
	mult := 1
	t := strings.TrimSpace(s)
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"KB", 1000}, {"MB", 1000 * 1000}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.Atoi(t)
	if err != nil || n <= 0 {
		return fmt.Errorf("want a positive size such as 65536 or 64KiB, from %d to %d", v.min, v.max)
	}
	if n > v.max/mult || n*mult < v.min {
		return fmt.Errorf("out of range: want from %d to %d", v.min, v.max)
	}
	*v.p = n * mult
	return nil
}

// originsValue is a list of browser origins, each checked.
type originsValue struct{ listValue }

func (v originsValue) Set(s string) error {
	if err := v.listValue.Set(s); err != nil {
		return err
	}
	_, err := ws.ParseOrigins(*v.p)
	return err
}

// countValue is a whole number from min to max; unlike sizeValue it may be
// zero (when min is) and takes no unit.
type countValue struct {
	p        *int
	min, max int
}

func (v countValue) Type() string   { return "int" }
func (v countValue) String() string { return show(v.p, strconv.Itoa) }
func (v countValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < v.min || n > v.max {
		return fmt.Errorf("want a whole number from %d to %d", v.min, v.max)
	}
	*v.p = n
	return nil
}

// derivedSizeValue is a sizeValue whose zero means a default worked out at
// start (the usage's "(default: ...)" says which), so -h shows that, not 0.
type derivedSizeValue struct{ sizeValue }

func (v derivedSizeValue) String() string {
	if v.p == nil || *v.p == 0 {
		return ""
	}
	return v.sizeValue.String()
}
