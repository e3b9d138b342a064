"""The demo's keys over the engine's API, for a console in another terminal or a browser.

The demo serves two routes beside the API (same token): `GET /v1/demo` (its state)
and `POST /v1/demo/{action}`. `RemoteDemo` is the API client with those added, so
`mirrorline tui` attached to a running demo, and `mirrorline demo --web`, get the
fault and traffic keys too.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.demo.control import DemoAction, DemoControl, DemoState
from engine.demo.session import DemoSession
from engine.errors import MalformedError, MirrorlineError
from engine.service.remote import RemoteService


def demo_routes(session: DemoSession) -> list[Route]:
    async def state(request: Request) -> Response:
        return JSONResponse(asdict(session.state()))

    async def act(request: Request) -> Response:
        name = request.path_params["action"]
        try:
            action = DemoAction(name)
        except ValueError:
            known = ", ".join(a.value for a in DemoAction)
            raise MalformedError(f"no demo action {name!r} (one of: {known})") from None
        return JSONResponse(asdict(session.act(action)))

    return [Route("/v1/demo", state), Route("/v1/demo/{action}", act, methods=["POST"])]


class RemoteDemo(RemoteService, DemoControl):
    async def demo_state(self) -> DemoState:
        return _state(await self._call("GET", "/v1/demo"))

    async def demo_act(self, action: DemoAction) -> DemoState:
        return _state(await self._call("POST", f"/v1/demo/{action.value}"))

    async def is_demo(self) -> bool:
        """Whether the engine at the other end is a demo's (it serves /v1/demo)."""
        try:
            await self.demo_state()
        except MirrorlineError:  # 404 from a plain engine; or it cannot be reached
            return False
        return True


def _state(data: Any) -> DemoState:
    return DemoState(**{k: data[k] for k in DemoState.__dataclass_fields__})
