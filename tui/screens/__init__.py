"""Screens: the dashboard, the failures view, and the modals over them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

from textual.screen import ModalScreen, Screen

if TYPE_CHECKING:
    from tui.app import Console

R = TypeVar("R")


class ConsoleScreen(Screen[R], Generic[R]):
    """A screen whose actions obey the app's --read-only gate."""

    @property
    def console(self) -> Console:
        return self.app  # type: ignore[return-value]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.console.check_action(action, parameters)


class ConsoleModal(ModalScreen[R], Generic[R]):
    @property
    def console(self) -> Console:
        return self.app  # type: ignore[return-value]
