"""The spine of Vigil: Redis connection, embedded server, key names, messages, streams.

Every stage talks to every other stage only through what this package defines.
"""

from bus.connection import Bus, open_bus
from bus.names import Keys

__all__ = ["Bus", "Keys", "open_bus"]
