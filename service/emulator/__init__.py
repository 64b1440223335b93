"""A local stand-in for Twilio's Streams API and webhooks, for tests, demos and development."""

from service.emulator.app import create_emulator_app
from service.emulator.runtime import EmulatorConfig

__all__ = ["EmulatorConfig", "create_emulator_app"]
