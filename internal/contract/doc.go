// Package contract checks the service against its published contract: REST
// responses against the OpenAPI 3.1 document (api/openapi.json, validated
// with kin-openapi) and WebSocket frames against the message schemas of
// the AsyncAPI 3 document (docs/asyncapi.yaml). Tests use it so the
// documents cannot drift from what the server sends.
package contract
