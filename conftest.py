"""Project defaults for vesc-rig's own runs: the embedded simulated rack is the default rack."""

from pathlib import Path

import pytest

DEFAULT_RACK = Path(__file__).parent / "fixtures" / "racks" / "sim.toml"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("rack", default=None) is None:
        config.option.rack = str(DEFAULT_RACK)
