package ws

import "encoding/binary"

// WebSocket opcodes of the frames the writers put on the wire themselves
// (RFC 6455, section 5.2).
const (
	opText = 0x1
	opPing = 0x9
	opPong = 0xA
)

// appendServerFrame appends one final, unmasked server frame carrying
// payload: the bytes the library's WriteMessage would produce for a
// connection without compression (the upgrader never negotiates it).
// Writing frames ourselves lets a writer put several of a session's
// frames into one write, and try that write without waiting (see
// socket.tryWrite) instead of going through the library's per-write
// deadline.
func appendServerFrame(dst []byte, opcode byte, payload []byte) []byte {
	const fin = 0x80
	n := len(payload)
	switch {
	case n <= 125:
		dst = append(dst, fin|opcode, byte(n))
	case n <= 0xFFFF:
		dst = append(dst, fin|opcode, 126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, fin|opcode, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return append(dst, payload...)
}

// appendBatch frames what a writer took from a session's queue, in the
// order it goes out: the ping, the pong owed to the client, then the
// frames.
func appendBatch(dst []byte, b batch) []byte {
	if b.ping {
		dst = appendServerFrame(dst, opPing, nil)
	}
	if b.pong != nil {
		dst = appendServerFrame(dst, opPong, b.pong)
	}
	for _, f := range b.frames {
		dst = appendServerFrame(dst, opText, f)
	}
	return dst
}
