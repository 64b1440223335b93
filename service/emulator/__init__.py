"""A local stand-in for Twilio: its Streams and Call APIs, calls to numbers, signed webhooks."""

from service.emulator.app import create_emulator_app
from service.emulator.runtime import EmulatorConfig

__all__ = ["EmulatorConfig", "create_emulator_app"]
