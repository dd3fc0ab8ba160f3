"""pyicemon's API, working as its README documents, under ``fleetwatch.icecream``.

Change ``pyicemon`` to ``fleetwatch.icecream`` and the documented usage runs::

    from fleetwatch.icecream import messages
    m = messages.unpack(wire_data)  # one message: type word + body
    data = m.pack()

    import fleetwatch.icecream as pyicemon
    conn = pyicemon.Connection("scheduler.example", 8765)  # real version negotiation
    conn.send_message(messages.LoginMessage())
    m = conn.get_message()

    from fleetwatch.icecream.publishers import WebsocketPublisher  # = fleetwatch.publishers
    mon = pyicemon.Monitor("scheduler.example", 8765)
    mon.addPublisher(WebsocketPublisher(port=9999))  # listens on 127.0.0.1 by default
    mon.run()  # returns when the scheduler closes the connection

and ``python -m fleetwatch.icecream HOST PORT`` serves pyicemon's force-graph page.
The differences from pyicemon are listed in each module's docstring.
"""

import sys

from fleetwatch import publishers
from fleetwatch.icecream import messages
from fleetwatch.icecream.connection import Connection, ConnectionClosed
from fleetwatch.icecream.monitor import CS, Job, Monitor

# pyicemon's ``publishers`` was a submodule: make ``fleetwatch.icecream.publishers``
# importable as one too (it is fleetwatch.publishers).
sys.modules.setdefault(f"{__name__}.publishers", publishers)

__all__ = ["CS", "Connection", "ConnectionClosed", "Job", "Monitor", "messages", "publishers"]
