package baseline

import (
	"time"

	fws "github.com/fasthttp/websocket"
)

// writeLoop writes queued frames (one write per frame, with a deadline)
// and a ping every 30 s, as presenced's session writer does, until the
// connection stops.
func (c *wsConn) writeLoop() {
	ping := time.NewTicker(pingInterval)
	defer ping.Stop()
	for {
		select {
		case frame := <-c.out:
			select {
			case <-c.done:
				c.sendClose()
				return
			default:
			}
			_ = c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := c.ws.WriteMessage(fws.TextMessage, frame); err != nil {
				c.abort()
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(fws.PingMessage, nil, time.Now().Add(writeTimeout)); err != nil {
				c.abort()
				return
			}
		case <-c.done:
			c.sendClose()
			return
		}
	}
}

func (c *wsConn) sendClose() {
	if !c.aborted.Load() {
		_ = c.ws.WriteControl(fws.CloseMessage, fws.FormatCloseMessage(fws.CloseNormalClosure, ""), time.Now().Add(closeGrace))
	}
}

// stop ends the writer (after a close frame); the reader has returned.
func (c *wsConn) stop() { c.once.Do(func() { close(c.done) }) }

// abort cuts both directions at once: the writer may be blocked on a
// client that does not read.
func (c *wsConn) abort() {
	c.aborted.Store(true)
	c.stop()
	now := time.Now()
	_ = c.ws.NetConn().SetReadDeadline(now)
	_ = c.ws.NetConn().SetWriteDeadline(now)
}
