// docs/openapi.json, served at /openapi.json. Embedded as a literal because a
// SwiftPM resource bundle does not travel with a copied binary. Do not edit:
// edit docs/openapi.json, then run RelayOpenAPIDocumentTests, which prints how to sync this file.
enum RelayOpenAPIDocument {
    static let json = #"""
{
  "openapi": "3.1.0",
  "info": {
    "title": "m365-relay admin API",
    "version": "1.0.0",
    "description": "The admin HTTP server of m365-relay: the message trace, queue actions, routes, health and metrics. The dashboard at / is HTML and not described here. Bound to loopback (the default, admin.address 127.0.0.1:8025) no authentication is needed; bound to any other address every path except /healthz needs the token of admin.token_file, as a bearer token or as the password of HTTP Basic authentication (any user name). JSON keys are snake_case; dates are ISO 8601 in UTC with milliseconds; every documented key is present, null when it has no value. Errors are {\"error\": \"...\"}.",
    "license": { "name": "See the repository" }
  },
  "servers": [{ "url": "http://127.0.0.1:8025" }],
  "security": [{ "bearerToken": [] }, { "basicToken": [] }, {}],
  "paths": {
    "/healthz": {
      "get": {
        "operationId": "health",
        "summary": "The process is up",
        "description": "Always 200 while the process serves requests. Needs no token, for probes.",
        "security": [],
        "responses": {
          "200": { "description": "Up", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Readiness" } } } }
        }
      }
    },
    "/readyz": {
      "get": {
        "operationId": "readiness",
        "summary": "Ready to relay mail",
        "description": "200 when storage is reachable and at least one route is usable; 503 with the reason otherwise.",
        "responses": {
          "200": { "description": "Ready", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Readiness" } } } },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "503": { "description": "Not ready; reason says why", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Readiness" } } } }
        }
      }
    },
    "/metrics": {
      "get": {
        "operationId": "metrics",
        "summary": "Prometheus metrics",
        "description": "The Prometheus text exposition format 0.0.4; every metric is prefixed m365relay_.",
        "responses": {
          "200": { "description": "Metrics", "content": { "text/plain": { "schema": { "type": "string" } } } },
          "401": { "$ref": "#/components/responses/Unauthorized" }
        }
      }
    },
    "/openapi.json": {
      "get": {
        "operationId": "openapi",
        "summary": "This document",
        "responses": {
          "200": { "description": "The OpenAPI document", "content": { "application/json": { "schema": { "type": "object" } } } },
          "401": { "$ref": "#/components/responses/Unauthorized" }
        }
      }
    },
    "/api/v1/messages": {
      "get": {
        "operationId": "searchMessages",
        "summary": "Search the message trace",
        "description": "Messages matching every filter given, newest first, one page at a time. Unknown parameters are refused (400), so that a misspelt filter never matches everything.",
        "parameters": [
          { "name": "sender", "in": "query", "description": "Part of the envelope sender, case-insensitive.", "schema": { "type": "string" } },
          { "name": "recipient", "in": "query", "description": "Part of any envelope recipient, case-insensitive.", "schema": { "type": "string" } },
          { "name": "status", "in": "query", "schema": { "$ref": "#/components/schemas/Status" } },
          { "name": "since", "in": "query", "description": "Received at or after: an ISO 8601 date and time, or an age meaning now minus it (30m, 1h, 2d, 1w, 1h30m).", "schema": { "$ref": "#/components/schemas/TimeOrAge" }, "examples": { "age": { "value": "1h" }, "date": { "value": "2026-05-01T09:30:00Z" } } },
          { "name": "until", "in": "query", "description": "Received before: an ISO 8601 date and time, or an age meaning now minus it.", "schema": { "$ref": "#/components/schemas/TimeOrAge" } },
          { "name": "client", "in": "query", "description": "The clients entry's name, exact.", "schema": { "type": "string" } },
          { "name": "route", "in": "query", "description": "The route's name, exact.", "schema": { "type": "string" } },
          { "name": "message_id", "in": "query", "description": "The Message-ID header, with or without angle brackets, exact.", "schema": { "type": "string" } },
          { "name": "queue_id", "in": "query", "description": "A queue id, exact.", "schema": { "type": "string" } },
          { "name": "limit", "in": "query", "description": "Page size.", "schema": { "type": "integer", "minimum": 1, "maximum": 500, "default": 50 } },
          { "name": "cursor", "in": "query", "description": "next_cursor of the previous page, unchanged. Opaque: any other value is refused (400).", "schema": { "type": "string", "pattern": "^[A-Za-z0-9_-]+$" } }
        ],
        "responses": {
          "200": { "description": "One page", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/MessagePage" } } } },
          "400": { "$ref": "#/components/responses/BadRequest" },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "503": { "$ref": "#/components/responses/StorageUnavailable" }
        }
      }
    },
    "/api/v1/messages/{id}": {
      "parameters": [{ "$ref": "#/components/parameters/QueueID" }],
      "get": {
        "operationId": "messageTimeline",
        "summary": "One message and its timeline",
        "responses": {
          "200": { "description": "The message, its envelope and every event, oldest first", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Timeline" } } } },
          "400": { "$ref": "#/components/responses/BadRequest" },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "404": { "$ref": "#/components/responses/NotFound" },
          "503": { "$ref": "#/components/responses/StorageUnavailable" }
        }
      },
      "delete": {
        "operationId": "deleteMessage",
        "summary": "Delete a message",
        "description": "Removes the content; the message stays in the trace with status deleted. Refused (409) while a delivery attempt holds it, and for a message already finished.",
        "responses": {
          "200": { "$ref": "#/components/responses/ActionDone" },
          "400": { "$ref": "#/components/responses/BadRequest" },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "404": { "$ref": "#/components/responses/NotFound" },
          "409": { "$ref": "#/components/responses/Conflict" },
          "503": { "$ref": "#/components/responses/StorageUnavailable" }
        }
      }
    },
    "/api/v1/messages/{id}/retry": {
      "parameters": [{ "$ref": "#/components/parameters/QueueID" }],
      "post": {
        "operationId": "retryMessage",
        "summary": "Attempt delivery now",
        "description": "A queued or deferred message is due at once.",
        "responses": {
          "200": { "$ref": "#/components/responses/ActionDone" },
          "400": { "$ref": "#/components/responses/BadRequest" },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "404": { "$ref": "#/components/responses/NotFound" },
          "409": { "$ref": "#/components/responses/Conflict" },
          "503": { "$ref": "#/components/responses/StorageUnavailable" }
        }
      }
    },
    "/api/v1/messages/{id}/hold": {
      "parameters": [{ "$ref": "#/components/parameters/QueueID" }],
      "post": {
        "operationId": "holdMessage",
        "summary": "Hold a message",
        "description": "A queued message is not delivered until released. A message being delivered right now is held after that attempt, unless the attempt finishes it.",
        "responses": {
          "200": { "$ref": "#/components/responses/ActionDone" },
          "400": { "$ref": "#/components/responses/BadRequest" },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "404": { "$ref": "#/components/responses/NotFound" },
          "409": { "$ref": "#/components/responses/Conflict" },
          "503": { "$ref": "#/components/responses/StorageUnavailable" }
        }
      }
    },
    "/api/v1/messages/{id}/release": {
      "parameters": [{ "$ref": "#/components/parameters/QueueID" }],
      "post": {
        "operationId": "releaseMessage",
        "summary": "Release a held message",
        "description": "A held message is queued again and due at once.",
        "responses": {
          "200": { "$ref": "#/components/responses/ActionDone" },
          "400": { "$ref": "#/components/responses/BadRequest" },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "404": { "$ref": "#/components/responses/NotFound" },
          "409": { "$ref": "#/components/responses/Conflict" },
          "503": { "$ref": "#/components/responses/StorageUnavailable" }
        }
      }
    },
    "/api/v1/routes": {
      "get": {
        "operationId": "listRoutes",
        "summary": "Routes with health, quota use and expiries",
        "responses": {
          "200": { "description": "Every configured route", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/RouteList" } } } },
          "401": { "$ref": "#/components/responses/Unauthorized" }
        }
      }
    }
  },
  "components": {
    "securitySchemes": {
      "bearerToken": { "type": "http", "scheme": "bearer", "description": "The content of admin.token_file (or admin.token_env)." },
      "basicToken": { "type": "http", "scheme": "basic", "description": "Any user name; the token as the password. Browsers opening the dashboard use this." }
    },
    "parameters": {
      "QueueID": {
        "name": "id",
        "in": "path",
        "required": true,
        "description": "The queue id: 16 characters of 0-9 and A-Z without I, L, O and U (lower case is accepted).",
        "schema": { "type": "string", "pattern": "^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{16}$" }
      }
    },
    "responses": {
      "ActionDone": { "description": "Done; the message as it is now", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Message" } } } },
      "BadRequest": { "description": "A parameter is wrong; the error names it and says why", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "Unauthorized": {
        "description": "A token is configured and the request did not carry it",
        "headers": { "WWW-Authenticate": { "description": "Basic realm=\"m365-relay\"", "schema": { "type": "string" } } },
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
      },
      "NotFound": { "description": "No message with this id (unknown, or pruned from the trace)", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "Conflict": { "description": "The message's status does not allow the action, or a delivery attempt holds it right now", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "StorageUnavailable": { "description": "Storage failed; the relay's log has the detail", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
    },
    "schemas": {
      "Error": {
        "type": "object",
        "required": ["error"],
        "properties": { "error": { "type": "string", "description": "What went wrong, for people." } }
      },
      "Readiness": {
        "type": "object",
        "required": ["status", "reason"],
        "properties": {
          "status": { "type": "string", "enum": ["ok", "not_ready"] },
          "reason": { "type": ["string", "null"], "description": "Why not ready: storage unreachable, no usable route." }
        }
      },
      "TimeOrAge": {
        "description": "An ISO 8601 date and time (RFC 3339), or an age meaning now minus it: a number and a unit s, m, h, d or w, repeated if wanted (30m, 1h, 2d, 1h30m).",
        "anyOf": [
          { "type": "string", "format": "date-time" },
          { "type": "string", "pattern": "^([0-9]{1,9}[smhdwSMHDW])+$" }
        ]
      },
      "Status": {
        "type": "string",
        "enum": ["queued", "deferred", "delivered", "failed", "bounced", "held", "deleted"],
        "description": "queued: no attempt yet; deferred: queued after a failed attempt; bounced: failed with a delivery status notification sent."
      },
      "Recipient": {
        "type": "object",
        "required": ["address", "status", "last_reply"],
        "properties": {
          "address": { "type": "string" },
          "status": { "type": "string", "enum": ["pending", "delivered", "failed"] },
          "last_reply": { "type": ["string", "null"], "description": "The last upstream reply about this recipient." }
        }
      },
      "Message": {
        "type": "object",
        "required": ["id", "status", "sender", "recipients", "client", "client_address", "route", "size", "message_id", "received_at", "finished_at", "next_attempt_at", "attempts", "last_reply"],
        "properties": {
          "id": { "type": "string", "description": "The queue id." },
          "status": { "$ref": "#/components/schemas/Status" },
          "sender": { "type": "string", "description": "The envelope sender; empty for the null sender <>." },
          "recipients": { "type": "array", "items": { "$ref": "#/components/schemas/Recipient" } },
          "client": { "type": "string", "description": "The clients entry that submitted it." },
          "client_address": { "type": "string", "description": "The client's IP address." },
          "route": { "type": "string" },
          "size": { "type": "integer", "minimum": 0, "description": "Octets." },
          "message_id": { "type": ["string", "null"], "description": "The Message-ID header." },
          "received_at": { "type": "string", "format": "date-time" },
          "finished_at": { "type": ["string", "null"], "format": "date-time", "description": "When it was delivered, failed or deleted." },
          "next_attempt_at": { "type": ["string", "null"], "format": "date-time" },
          "attempts": { "type": "integer", "minimum": 0 },
          "last_reply": { "type": ["string", "null"], "description": "The last reply or error." }
        }
      },
      "MessagePage": {
        "type": "object",
        "required": ["messages", "next_cursor"],
        "properties": {
          "messages": { "type": "array", "items": { "$ref": "#/components/schemas/Message" } },
          "next_cursor": { "type": ["string", "null"], "description": "Pass as cursor for the next (older) page; null on the last page." }
        }
      },
      "Envelope": {
        "type": "object",
        "required": ["sender", "recipients", "client_name", "client_address", "helo_name", "tls_version", "authenticated_as", "route", "smtputf8", "body_8bit", "message_id", "original_sender", "policy_notes"],
        "properties": {
          "sender": { "type": "string" },
          "recipients": { "type": "array", "items": { "type": "string" } },
          "client_name": { "type": "string" },
          "client_address": { "type": "string" },
          "helo_name": { "type": "string" },
          "tls_version": { "type": ["string", "null"], "description": "e.g. TLSv1.3; null for plaintext." },
          "authenticated_as": { "type": ["string", "null"], "description": "The SMTP AUTH identity." },
          "route": { "type": "string" },
          "smtputf8": { "type": "boolean" },
          "body_8bit": { "type": "boolean", "description": "BODY=8BITMIME or BINARYMIME was given." },
          "message_id": { "type": ["string", "null"] },
          "original_sender": { "type": ["string", "null"], "description": "The sender the client gave, when rewrite_sender replaced it." },
          "policy_notes": { "type": "array", "items": { "type": "string" }, "description": "What policy changed before queueing." }
        }
      },
      "Event": {
        "type": "object",
        "required": ["at", "kind", "summary", "details"],
        "properties": {
          "at": { "type": "string", "format": "date-time" },
          "kind": { "type": "string", "enum": ["received", "attempt", "delivered", "deferred", "failed", "bounced", "rerouted", "held", "released", "retried", "deleted"] },
          "summary": { "type": "string", "description": "One line for people, e.g. the upstream reply." },
          "details": {
            "type": "object",
            "additionalProperties": { "type": "string" },
            "description": "Machine-readable facts, e.g. route, transport, mailbox, reply, request_id, upstream_id, duration_ms, by."
          }
        }
      },
      "Timeline": {
        "type": "object",
        "required": ["message", "envelope", "events", "has_content"],
        "properties": {
          "message": { "$ref": "#/components/schemas/Message" },
          "envelope": { "$ref": "#/components/schemas/Envelope" },
          "events": { "type": "array", "items": { "$ref": "#/components/schemas/Event" } },
          "has_content": { "type": "boolean", "description": "Whether the content is still stored." }
        }
      },
      "QuotaUse": {
        "type": "object",
        "required": ["used", "limit"],
        "properties": {
          "used": { "type": "integer", "minimum": 0 },
          "limit": { "type": ["integer", "null"], "description": "null: no limit for this mode." }
        }
      },
      "Mailbox": {
        "type": "object",
        "required": ["mailbox", "messages_per_minute", "recipients_per_day", "connections", "paused_until"],
        "properties": {
          "mailbox": { "type": "string" },
          "messages_per_minute": { "$ref": "#/components/schemas/QuotaUse" },
          "recipients_per_day": { "$ref": "#/components/schemas/QuotaUse" },
          "connections": { "$ref": "#/components/schemas/QuotaUse" },
          "paused_until": { "type": ["string", "null"], "format": "date-time", "description": "Set while throttling or the daily quota pauses it." }
        }
      },
      "Route": {
        "type": "object",
        "required": ["name", "mode", "tenant_id", "fallback", "health", "held_until", "reason", "mailboxes", "token_expires_at", "credential_expires_at"],
        "properties": {
          "name": { "type": "string" },
          "mode": { "type": "string", "enum": ["smtp", "graph", "connector", "direct-send", "sandbox"] },
          "tenant_id": { "type": ["string", "null"] },
          "fallback": { "type": ["string", "null"] },
          "health": { "type": "string", "enum": ["ok", "paused", "stopped"], "description": "paused: Microsoft refused the route's set-up; stopped: every route of the tenant stopped." },
          "held_until": { "type": ["string", "null"], "format": "date-time" },
          "reason": { "type": ["string", "null"], "description": "Microsoft's reply and what it means, when paused or stopped." },
          "mailboxes": { "type": "array", "items": { "$ref": "#/components/schemas/Mailbox" } },
          "token_expires_at": { "type": ["string", "null"], "format": "date-time" },
          "credential_expires_at": { "type": ["string", "null"], "format": "date-time", "description": "Expiry of the client certificate or secret." }
        }
      },
      "RouteList": {
        "type": "object",
        "required": ["routes"],
        "properties": { "routes": { "type": "array", "items": { "$ref": "#/components/schemas/Route" } } }
      }
    }
  }
}

"""#
}
