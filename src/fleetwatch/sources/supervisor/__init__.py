"""supervisord: watched and controlled over its XML-RPC interface."""

from fleetwatch.sources.supervisor.client import XmlRpcClient
from fleetwatch.sources.supervisor.protocol import Fault, Faults, ProcessStates
from fleetwatch.sources.supervisor.source import ACTIONS, LogChunk, SupervisorSource

__all__ = [
    "ACTIONS",
    "Fault",
    "Faults",
    "LogChunk",
    "ProcessStates",
    "SupervisorSource",
    "XmlRpcClient",
]
