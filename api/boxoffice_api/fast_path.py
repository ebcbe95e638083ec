"""The hot endpoints served without FastAPI's per-request machinery, by the same handlers.

In a ticket drop most requests are queue polls, then joins, holds, payments, charges and
seat lists. FastAPI spends most of such a request matching ten routers in order and solving a
tree of dependencies (HTTPBearer, APIKeyHeader, the service) before the handler runs
(``docs/benchmarks.md`` has the profile). :class:`FastPathMiddleware` serves the routes it is
given directly:

- the route is found by one dictionary look-up on the method and the route's own compiled
  path pattern;
- path, query and header parameters are read as FastAPI's ``request_params_to_args`` reads
  them and validated by the route's own fields' validators (a plan made once per route: each
  parameter's request key, default and validator); the JSON body is parsed and validated in
  one call by the route's own body field's validator (``validate_json``), and a body it
  refuses is FastAPI's to parse and report; so what is accepted and how it is converted cannot
  differ (``tests/api/test_fast_path.py`` sends the cases where JSON parsers disagree);
- authentication is one plain call per credential (``deps.user_of_access_token``,
  ``deps.queue_claims_of``), the functions the FastAPI dependencies call;
- the route's handler is called with the same arguments FastAPI would pass, and its answer is
  serialized once, by the route's response field's serializer, into the bytes FastAPI would
  send, sent as two ASGI messages with a header list made once per route.

There is one definition of each endpoint: the handler function, its schemas and its OpenAPI
description are the FastAPI route's; this module only decides, per request, who calls it.
A request the fast path cannot serve exactly as FastAPI would is handed to FastAPI untouched,
body included, before anything is done for it: a body that is not ``application/json`` JSON, a
parameter or body that fails validation (FastAPI then reports the errors in its own order),
``root_path`` mounts, dependency overrides (tests). Errors raised once the request is accepted
(401, 403 from the gate, engine errors) go through the app's own exception handlers, so their
bodies and headers are byte-identical; an unexpected error gets the app's server error
handler's answer, then propagates to the server, as Starlette's ServerErrorMiddleware does
for a route (the fast path runs outside FastAPI's stack: ``app.BoxOfficeApp``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Response, params
from fastapi._compat import ModelField
from fastapi._compat.shared import field_annotation_is_sequence
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.utils import (
    _get_param_aliases,
    _get_param_model,
)
from fastapi.exceptions import ResponseValidationError
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic_core import SchemaSerializer, SchemaValidator, ValidationError
from starlette.convertors import Convertor
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .deps import (
    bearer_credentials,
    current_user,
    get_service,
    queue_claims,
    queue_claims_of,
    user_of_access_token,
)
from .service import Service

JSON_MEDIA_TYPE = "application/json"
# FastAPI parses a body as JSON for any application/json or application/*+json type; the
# fast path takes the one clients send and leaves the rest (and any parameters) to FastAPI.
_FAST_CONTENT_TYPES = frozenset({"application/json", "application/json; charset=utf-8"})
_CONTENT_TYPE_HEADER = (b"content-type", JSON_MEDIA_TYPE.encode())
# Defaults read once and passed as they are: FastAPI reads a parameter's default (a property
# that asks pydantic) and deep-copies it for each request, which for these immutable values
# is the value itself.
_IMMUTABLE = (str, int, float, bool, bytes, type(None))
_PER_REQUEST = object()  # a default that must be made for each request, as FastAPI does


class _FallThrough(Exception):
    """The request is FastAPI's to serve (nothing has been done for it yet)."""


@dataclass(frozen=True)
class FastRoute:
    """One route served by the fast path: the FastAPI route and what its handler needs."""

    route: APIRoute
    pattern: re.Pattern[str]
    convertors: dict[str, Convertor[Any]]
    needs_user: str | None  # the handler's argument names for the credentials and service
    needs_claims: str | None
    needs_service: str | None
    response_type: type
    status_code: int
    path_params: tuple[_Param, ...]
    query_params: tuple[_Param, ...]
    header_params: tuple[_Param, ...]
    header_names: frozenset[bytes]  # the request headers the route reads
    body_name: str | None  # the handler's argument for the body, and the body's validator
    body_validator: SchemaValidator | None
    serializer: SchemaSerializer  # the response field's

    @classmethod
    def of(cls, route: APIRoute) -> FastRoute:
        """The fast form of ``route``.

        Raises:
            ValueError: the route needs something the fast path does not provide (another
                dependency, cookies, a request object, a custom response class).
        """
        dependant = route.dependant
        names: dict[object, str | None] = {}
        for sub in dependant.dependencies:
            if sub.call not in (current_user, queue_claims, get_service):
                raise ValueError(f"{route.path}: dependency {sub.call!r} is not on the fast path")
            names[sub.call] = sub.name
        if (
            dependant.cookie_params
            or dependant.request_param_name
            or dependant.http_connection_param_name
            or dependant.background_tasks_param_name
            or dependant.security_scopes_param_name
            or route.response_field is None
            or (
                route.body_field is not None
                and (
                    len(dependant.body_params) != 1
                    or route._embed_body_fields
                    or not isinstance(route.body_field.field_info, params.Body)
                    or isinstance(route.body_field.field_info, params.Form)
                )
            )
            or not isinstance(route.status_code, int | None)
            or not isinstance(route.response_class, DefaultPlaceholder)
        ):
            raise ValueError(f"{route.path}: the route needs FastAPI's full request handling")
        field_type = route.response_field.field_info.annotation
        if not isinstance(field_type, type):
            raise ValueError(f"{route.path}: the response model is not a class")
        body_name, body_validator = None, None
        if route.body_field is not None:
            body = dependant.body_params[0]
            body_name, body_validator = body.name, _validator_of(body)
        header_params = tuple(_Param.of(f) for f in dependant.header_params)
        header_names = {p.key.encode("latin-1") for p in header_params}
        if current_user in names:
            header_names.add(b"authorization")
        if queue_claims in names:
            header_names.add(b"x-queue-token")
        if route.body_field is not None:
            header_names.add(b"content-type")
        return cls(
            route=route,
            pattern=route.path_regex,
            convertors=route.param_convertors,
            needs_user=names.get(current_user),
            needs_claims=names.get(queue_claims),
            needs_service=names.get(get_service),
            response_type=field_type,
            status_code=route.status_code or 200,
            path_params=tuple(_Param.of(f) for f in dependant.path_params),
            query_params=tuple(_Param.of(f) for f in dependant.query_params),
            header_params=header_params,
            header_names=frozenset(header_names),
            body_name=body_name,
            body_validator=body_validator,
            serializer=_serializer_of(route.response_field),
        )


@dataclass(frozen=True)
class _Param:
    """A scalar path, query or header parameter of a route, read and validated as FastAPI's
    ``request_params_to_args`` does (the value under the parameter's one request key, else
    its default; then the field's own validation)."""

    name: str
    key: str  # the request's name for it; header names in lower case
    field: ModelField
    validator: SchemaValidator  # the field's own
    required: bool
    validate_default: bool
    default: Any  # or _PER_REQUEST

    @classmethod
    def of(cls, field: ModelField) -> _Param:
        """Raises ValueError for a parameter that is not one plain scalar value."""
        aliases = _get_param_aliases(field)
        info = field.field_info
        if (
            len(aliases) != 1
            or _get_param_model(field) is not None
            or field_annotation_is_sequence(info.annotation)
            or not isinstance(info, params.Param)
        ):
            raise ValueError(f"parameter {field.name}: not a plain scalar")
        key = aliases[0][1]
        if isinstance(info, params.Header):
            key = key.lower()
        default: Any = _PER_REQUEST
        if (
            not info.is_required()
            and info.default_factory is None
            and type(info.default) in _IMMUTABLE
        ):
            default = info.default
        return cls(
            field.name,
            key,
            field,
            _validator_of(field),
            info.is_required(),
            bool(info.validate_default),
            default,
        )

    def read(self, source: Mapping[str, str], values: dict[str, Any]) -> None:
        """Adds the parameter's value from ``source`` to ``values``.

        Raises:
            _FallThrough: it is missing and required, or invalid (FastAPI reports it).
        """
        raw = source.get(self.key)
        if raw is None:
            if self.required:
                raise _FallThrough
            default = self.default
            if default is _PER_REQUEST:
                default = copy.deepcopy(self.field.default)
            if not self.validate_default:
                values[self.name] = default
                return
            raw = default
        try:
            # As FastAPI's ModelField.validate calls it.
            values[self.name] = self.validator.validate_python(raw, from_attributes=True)
        except ValidationError:
            raise _FallThrough from None


def _validator_of(field: ModelField) -> SchemaValidator:
    """The validator FastAPI's ``field.validate`` runs (its type adapter's)."""
    validator = field._type_adapter.validator
    if not isinstance(validator, SchemaValidator):
        raise ValueError(f"{field.name}: no built validator")
    return validator


def _serializer_of(field: ModelField) -> SchemaSerializer:
    """The serializer FastAPI's ``field.serialize_json`` runs (its type adapter's)."""
    serializer = field._type_adapter.serializer
    if not isinstance(serializer, SchemaSerializer):
        raise ValueError(f"{field.name}: no built serializer")
    return serializer


def fast_routes(
    routes: Sequence[BaseRoute], endpoints: Iterable[Callable[..., Any]]
) -> list[FastRoute]:
    """The routes (of an app's router, included routers walked) whose handler is one of
    ``endpoints``, in fast form.

    Raises:
        ValueError: an endpoint has no route, or its route cannot be served fast (among others:
            it was included with a prefix or dependencies of its own).
    """
    wanted = set(endpoints)
    found: list[APIRoute] = []
    for context in iter_route_contexts(routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or route.endpoint not in wanted:
            continue
        if context.path != route.path or list(getattr(context, "dependencies", None) or []):
            raise ValueError(f"{route.path}: included with a prefix or dependencies")
        found.append(route)
    missing = wanted - {r.endpoint for r in found}
    if missing:
        raise ValueError(f"no route for {sorted(e.__name__ for e in missing)}")
    return [FastRoute.of(r) for r in found]


class FastPathMiddleware:
    """Serves ``endpoints``' routes of ``api`` directly (the module's docstring says how);
    every other request, and any request it cannot serve exactly as FastAPI would, goes to
    ``app`` (FastAPI's own stack: exception handling and the router). It is the innermost of
    boxoffice's middlewares, so load shedding, the body limits and metrics see every
    request."""

    def __init__(self, app: ASGIApp, api: FastAPI, endpoints: Iterable[Callable[..., Any]]) -> None:
        self.app = app
        self.api = api
        self.by_method: dict[str, list[FastRoute]] = {}
        for fast in fast_routes(api.router.routes, endpoints):
            for method in fast.route.methods or ():
                self.by_method.setdefault(method, []).append(fast)
        # The app's exception handlers by exception class, as Starlette's ExceptionMiddleware
        # looks them up; Exception (and 500) belong to the outermost server error handler.
        self.handlers = {
            key: handler
            for key, handler in api.exception_handlers.items()
            if isinstance(key, type) and key is not Exception
        }
        # What Starlette's ServerErrorMiddleware answers for any other exception (a bug).
        self.server_error: Any = api.exception_handlers.get(Exception) or _plain_server_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            routes = self.by_method.get(scope["method"])
            if routes is not None:
                path = scope["path"]
                for fast in routes:
                    match = fast.pattern.match(path)
                    if match is not None:
                        await self.serve(fast, match, scope, receive, send)
                        return
        await self.app(scope, receive, send)

    async def serve(
        self, fast: FastRoute, match: re.Match[str], scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Serves one request of ``fast``'s route, or hands it to FastAPI unchanged."""
        messages: list[Message] = []
        try:
            if self.api.dependency_overrides:
                raise _FallThrough
            values, headers, path_params = self.parameters(fast, match, scope)
            if fast.body_name is not None:
                values[fast.body_name] = await self.body(fast, headers, receive, messages)
        except _FallThrough:
            await self.app(scope, replay(messages, receive), send)
            return
        route = fast.route
        scope["route"] = route  # what the router would have set (metrics label by it)
        scope["endpoint"] = route.endpoint
        scope["path_params"] = path_params
        try:
            service: Service = self.api.state.service
            if fast.needs_service is not None:
                values[fast.needs_service] = service
            if fast.needs_user is not None:
                user_id = user_of_access_token(
                    service, bearer_credentials(headers.get("authorization"))
                )
                values[fast.needs_user] = user_id
                if fast.needs_claims is not None:
                    token = headers.get("x-queue-token")
                    values[fast.needs_claims] = queue_claims_of(service, user_id, token)
            sub_response = None
            if route.dependant.response_param_name:
                # FastAPI's temporary response, whose status and headers the answer takes.
                sub_response = Response()
                del sub_response.headers["content-length"]
                sub_response.status_code = None  # type: ignore[assignment]
                values[route.dependant.response_param_name] = sub_response
            raw = await route.endpoint(**values)
            body = self.serialize(fast, raw)
        except Exception as exc:
            handler = self.handler_for(exc)
            response = await (handler or self.server_error)(Request(scope, receive), exc)
            await response(scope, receive, send)
            if handler is None:
                raise  # as Starlette's ServerErrorMiddleware: answered, then logged by the server
            return
        status = fast.status_code
        response_headers = [(b"content-length", b"%d" % len(body)), _CONTENT_TYPE_HEADER]
        if sub_response is not None:
            status = sub_response.status_code or status
            response_headers.extend(sub_response.raw_headers)
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def parameters(
        fast: FastRoute, match: re.Match[str], scope: Scope
    ) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
        """The handler's validated path, query and header parameters, the request headers
        the route reads (the first of each name, as Starlette's ``Headers.get`` takes it), and
        the path parameters as the router puts them in the scope.

        Raises:
            _FallThrough: FastAPI must serve the request.
        """
        headers: dict[str, str] = {}
        wanted = fast.header_names
        for name, value in scope["headers"]:
            if name in wanted:
                headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        convertors = fast.convertors
        path_params = {
            name: convertors[name].convert(value) for name, value in match.groupdict().items()
        }
        values: dict[str, Any] = {}
        for param in fast.path_params:
            param.read(path_params, values)
        if fast.query_params:
            query = QueryParams(scope["query_string"])
            for param in fast.query_params:
                param.read(query, values)
        for param in fast.header_params:
            param.read(headers, values)
        return values, headers, path_params

    @staticmethod
    async def body(
        fast: FastRoute, headers: dict[str, str], receive: Receive, messages: list[Message]
    ) -> Any:
        """The route's body, parsed and validated in one call by its own validator.

        Raises:
            _FallThrough: FastAPI must serve the request (``messages`` holds what was read):
                another media type, an empty body, or one the validator refuses (FastAPI
                parses it with ``json.loads`` and reports its own errors; a JSON text that
                parser reads differently, such as a UTF-16 one, is refused here).
        """
        content_type = headers.get("content-type")
        if content_type is None or content_type.lower() not in _FAST_CONTENT_TYPES:
            raise _FallThrough
        raw = await _read_body(receive, messages)
        if not raw:
            raise _FallThrough
        assert fast.body_validator is not None
        try:
            return fast.body_validator.validate_json(raw)
        except ValidationError:
            raise _FallThrough from None

    @staticmethod
    def serialize(fast: FastRoute, raw: object) -> bytes:
        """The answer's bytes, as FastAPI's ``serialize_response`` writes them: validated
        against the response field (a handler's own model instance passes as it is) and
        dumped to JSON by it."""
        value = raw
        if type(raw) is not fast.response_type:
            field = fast.route.response_field
            assert field is not None
            value, errors = field.validate(raw, {}, loc=("response",))
            if errors:
                raise ResponseValidationError(errors=errors, body=raw)
        # As FastAPI's ModelField.serialize_json calls it (the other options at their defaults).
        return fast.serializer.to_json(value, by_alias=True)

    def handler_for(self, exc: Exception) -> Any:
        """The app's handler for ``exc`` (by its classes, nearest first), or None."""
        for cls in type(exc).__mro__:
            handler = self.handlers.get(cls)
            if handler is not None:
                return handler
        return None


async def _read_body(receive: Receive, messages: list[Message]) -> bytes:
    """The whole request body; every message read is kept in ``messages``.

    Raises:
        _FallThrough: the client went away (FastAPI sees the disconnect as it would have).
    """
    chunks = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            raise _FallThrough
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _plain_server_error(request: Request, exc: Exception) -> Response:
    return PlainTextResponse("Internal Server Error", status_code=500)


def replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that gives ``messages`` again (consuming the list), then the real ones:
    how a middleware that read a request's body hands the request on."""
    if not messages:
        return receive

    async def replayed() -> Message:
        return messages.pop(0) if messages else await receive()

    return replayed
