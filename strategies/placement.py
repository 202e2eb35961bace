"""Which Flower node a client's (partition's) messages go to.

On real SuperNodes each node holds one partition, named in its node config: the
mapping is fixed and the server learns it by asking every node once
(``fedsim/sim/discovery.py``).

In fedsim's simulation the nodes hold nothing of their own: every Ray worker can
load any partition.  So fedsim starts only a *pool* of nodes, as many as one stage
of a round addresses at most (``strategies.plan.largest_stage``), and before each
stage puts its sampled partitions on them, the i-th partition on the i-th node; each
message names its partition (``keys.PARTITION_ID``) and carries what that client
keeps between rounds.  Nothing is asked before round 1, and Flower's simulation
engine, which sweeps every node's queue every 0.1 s, sweeps tens of nodes rather
than the whole population: start-up and round time no longer grow with the number
of clients.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass
class Placement:
    """node id <-> partition id, fixed or reassigned per stage from a pool of nodes."""

    population: int  # partitions 0 .. population - 1
    nodes: tuple[int, ...]  # every node the server may address
    pooled: bool  # True: nodes stand in for any partition, which each message names
    partition_of: dict[int, int] = field(default_factory=dict)  # node id -> partition id
    node_of: dict[int, int] = field(default_factory=dict)  # partition id -> node id

    @classmethod
    def fixed(cls, partitions: Mapping[int, int]) -> Placement:
        """Each node holds one partition for the whole run (``partitions``: node id -> partition id)."""
        of = dict(partitions)
        return cls(len(of), tuple(sorted(of)), False, of, {p: n for n, p in of.items()})

    @classmethod
    def pool(cls, nodes: Sequence[int], population: int) -> Placement:
        return cls(population, tuple(sorted(nodes)), True)

    def place(self, partitions: Sequence[int]) -> list[int]:
        """The nodes the stage's ``partitions`` go to, in their order (a pool: reassigned now)."""
        if self.pooled:
            if len(partitions) > len(self.nodes):
                raise ValueError(
                    f"{len(partitions)} clients in one stage, but a pool of {len(self.nodes)} nodes"
                )
            self.partition_of = dict(zip(self.nodes, partitions, strict=False))
            self.node_of = {p: n for n, p in self.partition_of.items()}
        return [self.node_of[p] for p in partitions]
