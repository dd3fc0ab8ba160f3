"""Watching and controlling piwheels build masters (``kind = "piwheels"``).

``protocol`` is the sans-IO codec of the master's status and control messages,
``farm`` turns them into the fleet model (no I/O either), ``source`` runs the two
ZeroMQ sockets.
"""
