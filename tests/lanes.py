"""The suite in two lanes: which tests share a worker, and in what order the workers take them.

``./setup.sh test`` runs ``pytest -n 2 --dist loadscope``: a TCG bake keeps
about one of the machine's two cores busy, so two workers nearly halve the
wall time. ``tests/conftest.py`` hands pytest-xdist the scheduler below: a
module of real components (``tests/aws``, ``tests/faults``,
``tests/integration``) is one unit of work, so its module fixtures are set up
once; the long chains are two units, the lanes, that take about as long as
each other; every other test is a unit of its own. The workers take the fast
tests first, so a failure there shows within minutes.
"""

from __future__ import annotations

from typing import Any

# The modules that each set up one long chain, in two lanes of about equal length (seconds from CI's
# --durations, run alone).
LANES = (("tests/aws/test_aws_chain.py",  # 650: Packer's amazon-ebs on the EC2 twin
          "tests/faults/test_interrupts.py",  # 570: the interrupt chain and the writers
          "tests/faults/test_world.py"),  # 110
         ("tests/integration/test_local_chain.py",  # 480: Packer's qemu builder, then chroot
          "tests/integration/test_chroot_chain.py",  # 450
          "tests/faults/test_interrupts_aws.py"))  # 390: the AMI path stopped and failed
CHAINS = tuple(module for lane in LANES for module in lane)
REAL = ("tests/aws/", "tests/faults/", "tests/integration/")


def module_of(nodeid: str) -> str:
    """``tests/unit/test_x.py`` of ``tests/unit/test_x.py::test_y[param]``."""
    return nodeid.split("::")[0]


def scope_of(nodeid: str) -> str:
    """The unit of work a test belongs to: its lane, its module of real components, or itself."""
    module = module_of(nodeid)
    for number, lane in enumerate(LANES, 1):
        if module in lane:
            return f"lane {number}"
    return module if module.startswith(REAL) else nodeid


def rank(nodeid: str) -> int:
    """Fast tests first, then the modules of real components, then the lanes' chains in their order."""
    module = module_of(nodeid)
    if module in CHAINS:
        return 2 + CHAINS.index(module)
    return 1 if module.startswith(REAL) else 0


def scheduler(config: Any, log: Any) -> Any:
    """pytest-xdist's load-by-scope scheduling with ``scope_of`` as the scope (imported here: only a run in
    lanes needs pytest-xdist)."""
    from xdist.scheduler import LoadScopeScheduling

    class Lanes(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    return Lanes(config, log)
