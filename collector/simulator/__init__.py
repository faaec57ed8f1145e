"""A Mixpanel Raw Event Export simulator: a real HTTP server on loopback with scripted faults.

with Simulator(SimConfig(seed=1)) as sim:
    sim.script([Fault.reset(after_bytes=20_000), Fault.status(503)])
    ...  # query sim.url; compare with sim.truth(start, end)
"""

from collector.simulator.config import SimConfig
from collector.simulator.events import Truth
from collector.simulator.faults import Fault
from collector.simulator.server import Simulator

__all__ = ["Fault", "SimConfig", "Simulator", "Truth"]
