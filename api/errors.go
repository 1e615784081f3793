package api

import (
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/presence-cluster/presence/api/ws"
	"github.com/presence-cluster/presence/routing"
	"github.com/presence-cluster/presence/wire"
)

const (
	detailInternal    = "Internal server error"
	detailUnavailable = "Service temporarily unavailable, retry later"
)

// writeDetail answers with status and {"detail": detail}.
func writeDetail(c *fiber.Ctx, status int, detail string) error {
	c.Status(status)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(wire.AppendDetail(nil, detail))
}

// handleError is Fiber's error handler: every error leaves as a
// {"detail": ...} body with no internal text in it. It is the one place
// where routing's domain errors become HTTP statuses.
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	var v errValidation
	var fe *fiber.Error
	var refused *routing.Refusal
	switch {
	case errors.As(err, &refused):
		// The actor's own words, with the status of its kind.
		status := statusOf(refused.Kind)
		if status == fiber.StatusServiceUnavailable {
			setRetryAfter(c, err)
		}
		return writeDetail(c, status, refused.Detail)
	case errors.Is(err, routing.ErrNotFound):
		return writeDetail(c, fiber.StatusNotFound, detailNotFound)
	case errors.As(err, &v):
		return writeDetail(c, fiber.StatusUnprocessableEntity, string(v))
	case errors.Is(err, errNoFields):
		return writeDetail(c, fiber.StatusBadRequest, detailNoFields)
	case errors.Is(err, errCompressedBody):
		return writeDetail(c, fiber.StatusUnsupportedMediaType, detailCompressedBody)
	case errors.Is(err, errNoVisibilityFields):
		return writeDetail(c, fiber.StatusBadRequest, detailNoVisibilityFields)
	case errors.Is(err, errTooManyIDs):
		return writeDetail(c, fiber.StatusBadRequest, detailTooManyIDs)
	case errors.Is(err, routing.ErrUnavailable):
		if routing.RetryAfter(err) == 0 {
			// (An owner suspected down is logged once by the router.)
			s.log.Warn("actor request timed out", slog.String("path", c.Path()))
		}
		setRetryAfter(c, err)
		return writeDetail(c, fiber.StatusServiceUnavailable, detailUnavailable)
	case errors.As(err, &fe):
		switch fe.Code {
		case fiber.StatusRequestEntityTooLarge, fiber.StatusRequestHeaderFieldsTooLarge:
			// fasthttp closes the connection after this answer with the
			// rest of the request unread: drain it so the client reads
			// the answer instead of a reset.
			ws.LingerOnClose(c.Context().Conn())
		}
		switch fe.Code {
		case fiber.StatusRequestEntityTooLarge:
			return writeDetail(c, fe.Code, "Request body too large")
		case fiber.StatusNotFound:
			return writeDetail(c, fe.Code, "Not Found")
		case fiber.StatusMethodNotAllowed:
			return writeDetail(c, fe.Code, "Method Not Allowed")
		}
		if fe.Code >= 500 {
			s.log.Error("request failed", slog.String("path", c.Path()), slog.Any("err", err))
			return writeDetail(c, fe.Code, detailInternal)
		}
		// fe.Message may carry the parser's text and a dump of the raw
		// request (tokens included): answer the status text only.
		return writeDetail(c, fe.Code, statusText(fe.Code))
	}
	s.log.Error("request failed", slog.String("path", c.Path()), slog.Any("err", err))
	return writeDetail(c, fiber.StatusInternalServerError, detailInternal)
}

// setRetryAfter advises a client refused with 503 when to try again: the
// router's advice for an owner suspected down, else a second (a store or
// an owner that did not answer in time).
func setRetryAfter(c *fiber.Ctx, err error) {
	d := routing.RetryAfter(err)
	if d <= 0 {
		d = time.Second
	}
	c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int((d+time.Second-1)/time.Second)))
}

func (s *Server) logPanic(c *fiber.Ctx, e any) {
	s.log.Error("handler panic", slog.String("path", c.Path()), slog.Any("panic", e), slog.String("stack", string(debug.Stack())))
}

// statusOf is the HTTP status of a refusal's kind.
func statusOf(kind error) int {
	if errors.Is(kind, routing.ErrConflict) {
		return fiber.StatusConflict
	}
	return fiber.StatusServiceUnavailable
}

func statusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return t
	}
	return "Request refused"
}
