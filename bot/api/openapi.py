"""The OpenAPI 3.1 document served at `GET /api/v1/openapi.json`."""

from __future__ import annotations

from typing import Any

from bot.api.entries import MAX_ENTRIES
from kpis.catalogue import DIMENSIONS

_NUMBER_OR_NULL = {"type": ["number", "null"]}
_PERIOD = {
    "type": "object", "required": ["start", "end"],
    "properties": {"start": {"type": "string", "format": "date"},
                   "end": {"type": "string", "format": "date"}},
}
_CHANGES = {
    "type": "object",
    "additionalProperties": {
        "type": "object", "required": ["value", "previous", "change_pct"],
        "properties": {"value": _NUMBER_OR_NULL, "previous": _NUMBER_OR_NULL,
                       "change_pct": _NUMBER_OR_NULL,
                       "significant": {"type": ["boolean", "null"]},
                       "method": {"type": "string",
                                  "description": "how a KPI with several ways was computed"}},
    },
}


def _errors(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Errors"}}}}


def _limited() -> dict[str, Any]:
    answer = _errors("Too many requests for this token: wait the seconds in Retry-After.")
    answer["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
    return answer


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "kpibot API", "version": "1",
                 "description": "Send numbers to kpibot and read its reports. Create a token "
                                "with `kpibot token create --name NAME`."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/entries": {"post": {
                "summary": "Store a batch of entries, all or nothing",
                "description": "The same rules as `/kpi log`: the same author logging the same "
                               "metric, day and dimensions again replaces the value; different "
                               "authors add up.",
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                                "schema": {"type": "string", "maxLength": 200},
                                "description": "A retry with the same key and body (within 24 h) "
                                               "answers the same and stores nothing twice."}],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/EntriesRequest"}}}},
                "responses": {
                    "201": {"description": "Stored", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Stored"}}}},
                    "400": _errors("The body is not JSON, or a header is malformed."),
                    "401": _errors("No valid token."),
                    "409": _errors("The Idempotency-Key was used with another body."),
                    "413": _errors(f"Over {MAX_ENTRIES:,} entries or 1 MB."),
                    "415": _errors("The body is not application/json."),
                    "422": _errors("Some entries are invalid; nothing was stored."),
                    "429": _limited(),
                },
            }},
            "/api/v1/report": {"get": {
                "summary": "KPIs of a period against the previous one (`kpibot report --json`)",
                "parameters": [
                    {"name": "from", "in": "query", "required": True,
                     "schema": {"type": "string", "format": "date"}},
                    {"name": "to", "in": "query", "required": True,
                     "schema": {"type": "string", "format": "date"}},
                    {"name": "by", "in": "query", "required": False, "schema": {"type": "string"},
                     "description": "Break down by a dimension: source, rep, campaign, product "
                                    "or one of the workspace's own, by its name (one group per "
                                    "value, `value` null for untagged entries)."},
                ],
                "responses": {
                    "200": {"description": "The report", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Report"}}}},
                    "401": _errors("No valid token."),
                    "422": _errors("A parameter is invalid."),
                    "429": _limited(),
                },
            }},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Entry": {
                    "type": "object", "required": ["metric", "value"],
                    "additionalProperties": False,
                    "properties": {
                        "metric": {"type": "string", "examples": ["leads"]},
                        "value": {"type": ["number", "string"],
                                  "description": "As typed in `/kpi log`: 80 is 80% for a "
                                                 "percent metric; \"$1,234\" reads too."},
                        "date": {"type": "string",
                                 "description": "YYYY-MM-DD, today or yesterday, in the "
                                                "workspace time zone; default today"},
                        "dims": {"type": "object", "additionalProperties": {"type": "string"},
                                 "description": "Tags by dimension name: the built-in "
                                                f"{', '.join(DIMENSIONS)} and the workspace's "
                                                "own (`/kpi dimension add temperature warm "
                                                "cold`). A name the workspace does not have, "
                                                "or a value outside a dimension's list, is "
                                                "422 naming the valid ones.",
                                 "examples": [{"source": "facebook"},
                                              {"source": "seo", "temperature": "warm"}]},
                        "author": {"type": "string", "maxLength": 64,
                                   "description": "default: the token's name"},
                    },
                },
                "EntriesRequest": {
                    "type": "object", "required": ["entries"], "additionalProperties": False,
                    "properties": {"entries": {"type": "array", "minItems": 1,
                                               "maxItems": MAX_ENTRIES,
                                               "items": {"$ref": "#/components/schemas/Entry"}}},
                },
                "Stored": {"type": "object", "required": ["stored"],
                           "properties": {"stored": {"type": "integer", "minimum": 1}}},
                "Errors": {
                    "type": "object", "required": ["errors"],
                    "properties": {"errors": {"type": "array", "items": {
                        "type": "object", "required": ["field", "message"],
                        "properties": {"index": {"type": "integer", "minimum": 0},
                                       "field": {"type": "string"},
                                       "message": {"type": "string"}},
                    }}},
                },
                "Report": {
                    "type": "object",
                    "required": ["workspace", "period", "previous", "metrics", "kpis"],
                    "properties": {
                        "workspace": {"type": "string"}, "period": _PERIOD, "previous": _PERIOD,
                        "partial": {"type": "boolean"}, "metrics": _CHANGES, "kpis": _CHANGES,
                        "by": {"type": "string",
                               "description": f"{', '.join(DIMENSIONS)} or the name of one of "
                                              "the workspace's own dimensions"},
                        "groups": {"type": "array", "items": {
                            "type": "object", "required": ["value", "metrics", "kpis"],
                            "properties": {"value": {"type": ["string", "null"]},
                                           "metrics": _CHANGES, "kpis": _CHANGES}}},
                    },
                },
            },
        },
    }
