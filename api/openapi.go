package api

import (
	_ "embed"

	"github.com/gofiber/fiber/v2"
)

// OpenAPI is the OpenAPI 3.1 document of the REST API (api/openapi.json),
// embedded so every node serves the description of exactly the API it
// runs. internal/contract validates responses against the same bytes.
//
//go:embed openapi.json
var OpenAPI []byte

// getOpenAPI answers GET /openapi.json with the embedded document.
func (s *Server) getOpenAPI(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(OpenAPI)
}
