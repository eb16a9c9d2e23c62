"""F7: links cut in the middle of a config write, a config read and an update.

Cut by the host closing the port, by dropping the TCP bridge, or by cutting the board's power through
its relay, at chosen byte offsets; then reconnect at once (inside the old firmware's 1000 ms
partial-frame window) or after it. The board must answer, its config must be exactly the old or
exactly the new one, and an interrupted upload must leave the old firmware running so that a retried
update succeeds.
"""

from __future__ import annotations

import time
from contextlib import suppress

import pytest
from disconnect_plan import METHODS, UPDATE_PHASES, FrameCut

from rig.client.esc import Esc
from rig.errors import LinkLost, RigTimeout
from rig.firmware.config import check_not_mixed
from rig.firmware.image import Image, upload_form
from rig.firmware.update import guard, plan_chunks
from rig.protocol.codecs import ConfigBlob, ConfigKind, GetConfig, SetConfig, WriteNewAppData, encode
from rig.protocol.framing import encode_frame
from rig.station.configs import ConfigCare
from rig.station.session import StationSession
from rig.station.strategy import Running, StationStrategy
from rig.transport.presence import wait_gone

INTERRUPTED = (LinkLost, RigTimeout)


def _open(station: StationSession, method: str) -> Esc:
    """A connection through the path the method will cut."""
    if method != "tcp drop":
        return station.connect()
    assert station.spec.bridge is not None
    esc = Esc.open(station.spec.bridge, trace=station.trace, timeouts=station.bench.timeouts)
    esc.flush_device_decoder()
    esc.fw_version()
    return esc


def _power_off(station: StationSession) -> None:
    """Cut the power and wait (bounded) until the port is gone: a relay like the LCUS acts a moment later."""
    before = station.bench.locator.identity()
    station.bench.power_channel().switch(False)
    wait_gone(station.bench.locator, before, station.answers, station.bench.bounds.gone_s)


def _arm(station: StationSession, esc: Esc, method: str, after: int, direction: str = "tx") -> None:
    action = (lambda: _power_off(station)) if method == "power cut" else None
    esc.link.cut_after(after, direction, action)  # type: ignore[arg-type]


def _cut_now(station: StationSession, esc: Esc, method: str) -> None:
    _arm(station, esc, method, 0)
    with suppress(*INTERRUPTED):
        esc.link.write(b"")  # fires the cut armed at 0 bytes
    esc.close()


def _come_back(station: StationSession, method: str, delay_s: float) -> None:
    if method == "power cut":
        station.bench.power_channel().switch(True)
    time.sleep(delay_s)


def _changed(station: StationSession, esc: Esc, blob: ConfigBlob) -> ConfigBlob:
    """A config to write: on hardware the board's defaults (safe); on the simulator a changed copy."""
    if station.spec.sim is None:
        default = esc.get_config(blob.kind, default=True)
        if default == blob:
            pytest.skip("the board runs its default config: an interrupted write could not be told apart")
        return default
    middle = len(blob.data) // 2
    data = blob.data[:middle] + bytes(b ^ 0xA5 for b in blob.data[middle : middle + 8]) + blob.data[middle + 8 :]
    return ConfigBlob(blob.kind, blob.signature, data)


@pytest.mark.parametrize("method", METHODS)
def test_config_write_cut(
    station: StationSession, config_backup: ConfigCare, method: str, frame_cut: FrameCut, reconnect_after_s: float
) -> None:
    kind = ConfigKind.APPCONF
    esc = _open(station, method)
    old = esc.get_config(kind)
    new = _changed(station, esc, old)
    frame = encode_frame(encode(SetConfig(new), esc.table))
    _arm(station, esc, method, frame_cut.offset(len(frame)))
    with suppress(*INTERRUPTED):
        esc.set_config(new)
    esc.close()
    _come_back(station, method, reconnect_after_s)

    with station.connect() as again:
        check_not_mixed(kind, again.get_config(kind), old, new)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("direction", ["request", "reply"])
def test_config_read_cut(station: StationSession, config_backup: ConfigCare, method: str, direction: str) -> None:
    kind = ConfigKind.MCCONF
    esc = _open(station, method)
    old = esc.get_config(kind)
    if direction == "request":
        _arm(station, esc, method, len(encode_frame(encode(GetConfig(kind), esc.table))) - 1)
    else:
        _arm(station, esc, method, len(old.pack()) // 2, "rx")
    with pytest.raises(INTERRUPTED):
        esc.get_config(kind)
    esc.close()
    _come_back(station, method, 0.0)

    with station.connect() as again:
        assert again.get_config(kind) == old


def _interrupt_upload(station: StationSession, method: str, phase: str, image: Image) -> None:
    """Run the upload by hand up to `phase` and cut the link there (never jump)."""
    esc = _open(station, method)
    guard(esc, image, allow_wrong_hw=True)
    form = upload_form(image)
    if phase == "erase":
        _arm(station, esc, method, 5)
        with suppress(*INTERRUPTED):
            esc.erase_new_app(form.erase_size)
        esc.close()
        return
    esc.erase_new_app(form.erase_size)
    chunks, _ = plan_chunks(form.payload)
    stop = {"first-chunk": 0, "middle-chunk": len(chunks) // 2, "last-chunk": len(chunks) - 1}.get(phase, len(chunks))
    for offset, data in chunks[:stop]:
        esc.write_new_app_data(offset, data)
    if stop == len(chunks):  # before the jump: everything written, then the link goes
        _cut_now(station, esc, method)
        return
    frame = encode_frame(encode(WriteNewAppData(*chunks[stop]), esc.table))
    _arm(station, esc, method, len(frame) // 2)
    with suppress(*INTERRUPTED):
        esc.write_new_app_data(*chunks[stop])
    esc.close()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("phase", UPDATE_PHASES)
def test_update_cut_leaves_old_firmware_and_retry_works(
    station: StationSession,
    config_backup: ConfigCare,
    baseline_firmware: Image,
    firmware: Image,
    strategy: StationStrategy,
    method: str,
    phase: str,
) -> None:
    strategy.transition(Running(baseline_firmware))
    _interrupt_upload(station, method, phase, firmware)
    _come_back(station, method, 0.0)

    with station.connect() as esc:
        assert esc.info is not None and esc.info.version == baseline_firmware.version, "old firmware not running"
    retried = station.update(firmware)
    assert retried.after.version == firmware.version
    station.update(baseline_firmware)
