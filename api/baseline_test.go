package api

import "github.com/gofiber/fiber/v2"

// Test-only exports for bench_test.go. The benchmarks there are in the
// external package api_test because they start real nodes, and cluster
// imports api: an internal test importing cluster would be an import cycle.

// benchBaselineBody is the baseline's answer: fixed, the size of the
// heartbeat answer.
var benchBaselineBody = []byte(`{"message":"Heartbeat received"}`)

// BenchBaselineApp is the bare Fiber app every HTTP benchmark is compared
// with: the server settings New uses (buffer sizes, limits, timeouts) but
// no middleware, no authentication and no actor; every method and path
// gets the same small JSON body, so it is driven with exactly the requests
// the real routes get.
func BenchBaselineApp() *fiber.App {
	app := fiber.New(fiber.Config{
		AppName:               "baseline",
		DisableStartupMessage: true,
		BodyLimit:             DefaultBodyLimit,
		ReadBufferSize:        DefaultHeaderLimit,
		ReadTimeout:           DefaultReadTimeout,
		WriteTimeout:          DefaultWriteTimeout,
		IdleTimeout:           DefaultIdleTimeout,
	})
	app.Use(func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Send(benchBaselineBody)
	})
	return app
}
