"""``fedsim launch`` refuses, before starting anything, more SuperNodes than the memory holds."""

from __future__ import annotations

import pytest

from fedsim.deploy.launch import BASE_MIB, NODE_MIB, check_room
from fedsim.scenario.tables import ScenarioError


def test_as_many_nodes_as_the_memory_holds_are_allowed_and_one_more_is_refused() -> None:
    available = BASE_MIB + 6 * NODE_MIB
    check_room(6, available)
    with pytest.raises(ScenarioError, match=r"^--clients: 7 SuperNodes need about \d+ GiB") as error:
        check_room(7, available)
    assert "room for 6" in str(error.value) and "fedsim run" in str(error.value)
