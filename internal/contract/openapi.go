package contract

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/presence-cluster/presence/api"
)

// ErrUndocumented is wrapped by CheckResponse when a successful response
// comes from a route or method the OpenAPI document does not describe.
var ErrUndocumented = errors.New("route not in the OpenAPI document")

// anyRouteStatuses are answers the HTTP layer may give on any route before
// a handler runs (timeouts, oversized heads or bodies, unknown methods).
// The document does not list them per operation; their body must still be
// the error object.
var anyRouteStatuses = map[int]bool{
	http.StatusNotFound:                    true,
	http.StatusMethodNotAllowed:            true,
	http.StatusRequestTimeout:              true,
	http.StatusRequestEntityTooLarge:       true,
	http.StatusRequestHeaderFieldsTooLarge: true,
	http.StatusInternalServerError:         true,
	http.StatusNotImplemented:              true,
	http.StatusServiceUnavailable:          true,
}

// openAPI is the loaded REST document and its router.
type openAPI struct {
	doc    *openapi3.T
	router routers.Router
	errors *openapi3.Schema
}

// The browser assets (the dashboard's HTML, the client's JavaScript) are
// documented as strings; kin-openapi decodes text/plain only by itself.
func init() {
	text := func(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
		b, err := io.ReadAll(body)
		return string(b), err
	}
	openapi3filter.RegisterBodyDecoder("text/html", text)
	openapi3filter.RegisterBodyDecoder("text/javascript", text)
}

func loadOpenAPI() (*openAPI, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("parse api/openapi.json: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("api/openapi.json is not a valid OpenAPI document: %w", err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route api/openapi.json: %w", err)
	}
	errSchema := doc.Components.Schemas["Error"]
	if errSchema == nil || errSchema.Value == nil {
		return nil, errors.New("api/openapi.json: components.schemas.Error is missing")
	}
	return &openAPI{doc: doc, router: router, errors: errSchema.Value}, nil
}

// checkResponse validates one response to req.
func (o *openAPI) checkResponse(req *http.Request, status int, header http.Header, body []byte) error {
	if isCORSPreflight(req) && status == http.StatusNoContent {
		// Answered by the CORS layer on any route (PRESENCE_ALLOWED_ORIGINS),
		// not an API operation: no body. Without that setting a preflight
		// is an ordinary request (405 with the error body).
		if len(body) != 0 {
			return fmt.Errorf("CORS preflight %s answered 204 with a %d-byte body", req.URL.Path, len(body))
		}
		return nil
	}
	route, params, err := o.router.FindRoute(req)
	if err != nil {
		if status >= 400 {
			return o.checkErrorBody(status, body)
		}
		return fmt.Errorf("%s %s answered %d: %w", req.Method, req.URL.Path, status, ErrUndocumented)
	}
	op := route.Operation
	if op.Responses.Value(fmt.Sprint(status)) == nil && anyRouteStatuses[status] {
		return o.checkErrorBody(status, body)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status: status,
		Header: header,
		Body:   io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			MultiError:            true,
		},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return fmt.Errorf("%s %s answered %d against the OpenAPI document: %w\nbody: %s", req.Method, req.URL.Path, status, err, clip(body))
	}
	return nil
}

// isCORSPreflight reports whether req is a browser's CORS preflight.
func isCORSPreflight(req *http.Request) bool {
	return req.Method == http.MethodOptions && req.Header.Get("Access-Control-Request-Method") != ""
}

// checkErrorBody checks that an error answer is {"detail": "..."}.
func (o *openAPI) checkErrorBody(status int, body []byte) error {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("answer %d is not JSON: %w\nbody: %s", status, err, clip(body))
	}
	if err := o.errors.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		return fmt.Errorf("answer %d is not the error object: %w\nbody: %s", status, err, clip(body))
	}
	return nil
}

// clip shortens a body for an error message.
func clip(b []byte) string {
	const most = 512
	if len(b) > most {
		return string(b[:most]) + "..."
	}
	return string(b)
}
