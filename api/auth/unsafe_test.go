package auth

import "unsafe"

// unsafeString aliases b, as Fiber's zero-copy strings alias fasthttp's
// buffers.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
