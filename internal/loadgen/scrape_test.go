package loadgen

import "testing"

func TestParseStatCPU(t *testing.T) {
	// Fields after the command: state, ppid, pgrp, session, tty_nr,
	// tpgid, flags, minflt, cminflt, majflt, cmajflt, utime, stime, ...
	const rest = " S 1 2 3 0 -1 4194560 100 0 0 0 1234 567 0 0 20 0 8 0 1000 0 0"
	for _, tc := range []struct {
		name string
		stat string
		want cpuTime
	}{
		{"plain", "4242 (presenced)" + rest, cpuTime{user: 12.34, system: 5.67}},
		{"command with spaces and a parenthesis", "4242 (a b) c)" + rest, cpuTime{user: 12.34, system: 5.67}},
		{"no command", "4242 presenced" + rest, cpuTime{}},
		{"truncated", "4242 (presenced) S 1 2 3", cpuTime{}},
		{"not numbers", "4242 (presenced) S 1 2 3 0 -1 4194560 100 0 0 0 x y 0", cpuTime{}},
		{"empty", "", cpuTime{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseStatCPU(tc.stat); got != tc.want {
				t.Errorf("parseStatCPU = %+v, want %+v", got, tc.want)
			}
		})
	}
}
