"""Flash throughput: USB update by phase, bootloader upload and config round trip, against the floor.

Every update benchmark reports in ``extra_info`` the phase times, bytes/s per phase, the physical
floor of the same image (rig.report.floor, computed from the simulator's timing data), rig time / floor,
the modelled time the device really spent (its DeviceClock, which must match the floor), and the
rig's upload time / the desktop tool's stop-and-wait upload (reference_upload.py) measured in the
same run. Windows 1, 2 and 4 (chunks in flight) run in the same run; window > 1 reports its write
speed-up over window 1.

Run: ``.venv/bin/pytest tests/benchmarks --benchmark-only`` (speed 1: modelled real time; a small
update round takes about 10 s, the full-size 6.02 round about 26 s). ``--bench-full-image`` adds the
pipelined full-size round.
Under ``--benchmark-disable`` each benchmark runs once at speed 0 and checks what it can without
timing (phases measured, floor matches the device's modelled time, ratios computed).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from reference_upload import ReferenceResult, reference_upload

from rig.firmware.config import read_backup, restore
from rig.firmware.image import Image
from rig.firmware.update import UploadResult
from rig.report.floor import Floor, bootloader_floor, update_floor
from rig.station.bench import StationRig, UpdateResult

if TYPE_CHECKING:
    from conftest import BenchRack

pytestmark = pytest.mark.xdist_group("benchmarks")

SMALL_SIZE = 64 * 1024  # a 3.40 image (no fixed size before 3.56); a 64 KB 5.02 .bin does not exist: it would leave
# the integrity record of the firmware before it in sector 6 and the board would hang at boot
# Each round uploads the station's own version, so the config layout stays and the rig's restore is part of
# every round alike. The update is still real: the bootloader copies and the board re-enumerates, and the
# device's modelled time must match the floor, which includes the copy (and the first boot's record reset).
WINDOWS = (1, 2, 4)
EXTRA_FRAMES_S = 0.02  # FW_VERSION frames around an update (connect, guard, answer, reconnect) at 1 ms each


def _run_once(benchmark: Any, target: Callable[[], Any]) -> Any:
    """One timed round (an update takes seconds); returns what the target returned."""
    out: list[Any] = []
    benchmark.pedantic(lambda: out.append(target()), rounds=1, iterations=1)
    return out[0]


def _per_s(size: int, seconds: float) -> float:
    return size / seconds if seconds > 0 else math.inf


def _reference(bench: BenchRack, rig: StationRig, image: Image) -> ReferenceResult:
    """The desktop tool's upload of the same image on this station, measured once per run and shared."""
    key = ("reference", rig.name, image.sha256)
    if key not in bench.measured:
        with rig.connect() as esc:
            bench.measured[key] = reference_upload(esc, image)
    result = bench.measured[key]
    assert isinstance(result, ReferenceResult)
    return result


def _update_info(result: UpdateResult, floor: Floor, device_s: float, wall_s: float) -> dict[str, Any]:
    times, stats, raw = result.times, result.upload.stats, len(result.upload.image.data)
    phases = {"erase": times.erase_s, "write": times.write_s, "boot": times.boot_s, "ready": times.ready_s}
    floors = {"erase": floor.erase_s, "write": floor.write_s, "boot": floor.reboot_s, "ready": floor.ready_s}

    def rates(p: dict[str, float], total: float) -> dict[str, float]:
        return {
            "erase": _per_s(raw, p["erase"]),
            "write": _per_s(stats.bytes_sent, p["write"]),
            "boot": _per_s(raw, p["boot"]),
            "total": _per_s(raw, total),
        }

    return {
        "image": {
            "version": str(result.after.version),
            "raw_bytes": raw,
            "upload_bytes": stats.bytes_total,
            "bytes_sent": stats.bytes_sent,
            "chunks_sent": stats.chunks_sent,
            "chunks_skipped": stats.chunks_skipped,
            "compressed": result.upload.compressed,
        },
        "phases_s": {**phases, "total": times.total_s},
        "floor_s": floor.as_dict(),
        "phase_bytes_per_s": rates(phases, times.total_s),
        "floor_bytes_per_s": rates(floors, floor.total_s),
        "phase_over_floor": {name: phases[name] / floors[name] for name in phases},
        "rig_over_floor": times.total_s / floor.total_s,
        "device_s": device_s,  # modelled seconds the device spent during the whole update() call
        "device_over_floor": device_s / floor.total_s,
        "idle_s": wall_s - device_s,  # wall time the device waited: host, pty and simulator scheduling
        "resends": stats.resends,
        "fell_back": stats.fell_back,
    }


def _bench_update(benchmark: Any, bench: BenchRack, rig: StationRig, image: Image, window: int) -> None:
    timing: dict[str, float] = {}

    def target() -> UpdateResult:
        start = bench.device_seconds(rig)
        result = rig.update(image, window=window)
        timing["device_s"] = bench.device_seconds(rig) - start
        return result

    result = _run_once(benchmark, target)
    upload = result.upload
    floor = update_floor(
        upload.stats.bytes_sent, len(upload.image.data), result.after.version, frames=upload.stats.chunks_sent
    )
    wall_s = benchmark.stats.stats.min if benchmark.stats is not None else result.times.total_s
    info = _update_info(result, floor, timing["device_s"], wall_s)
    reference = _reference(bench, rig, upload.image)
    rig_upload_s = result.times.erase_s + result.times.write_s
    info["reference"] = {"erase_s": reference.erase_s, "write_s": reference.write_s, "upload_s": reference.upload_s}
    info["upload_over_reference"] = rig_upload_s / reference.upload_s
    info["window"] = window
    info["speed"] = bench.speed
    write_rate = info["phase_bytes_per_s"]["write"]
    bench.measured[("write_rate", rig.name, upload.image.sha256, window)] = write_rate
    window1 = bench.measured.get(("write_rate", rig.name, upload.image.sha256, 1))
    if window > 1 and isinstance(window1, float):
        info["write_speedup_vs_window1"] = write_rate / window1
    benchmark.extra_info.update(info)

    # What must hold at any speed: every phase measured, the device did exactly the floor's work.
    assert result.after.version == upload.image.version
    assert min(result.times.erase_s, result.times.write_s, result.times.boot_s, result.times.ready_s) > 0
    assert upload.stats.bytes_sent == reference.bytes_sent, "rig and reference must send the same bytes"
    assert floor.total_s <= timing["device_s"] <= floor.total_s + EXTRA_FRAMES_S, (
        f"the device spent {timing['device_s']:.4f} modelled s, the floor says {floor.total_s:.4f} s: "
        "rig.report.floor no longer matches the simulator's timing model"
    )
    assert math.isfinite(info["rig_over_floor"]) and info["upload_over_reference"] > 0


@pytest.mark.benchmark(group="update-64k-3.40")
@pytest.mark.parametrize("window", WINDOWS, ids=[f"window{w}" for w in WINDOWS])
def test_update_small_image(benchmark: Any, bench: BenchRack, window: int) -> None:
    """USB update of a 64 KB 3.40 image, by phase, stop-and-wait (window 1) and pipelined (2, 4)."""
    rig = bench.station("3.40")
    assert rig.spec.sim is not None
    image = bench.firmware(rig.spec.sim.node.hw, rig.spec.sim.node.fw, SMALL_SIZE)
    _bench_update(benchmark, bench, rig, image, window)


@pytest.mark.benchmark(group="update-full-6.02")
@pytest.mark.parametrize("window", (1, 4), ids=["window1", "window4"])
def test_update_full_image(benchmark: Any, bench: BenchRack, window: int, request: pytest.FixtureRequest) -> None:
    """USB update of a full-size 6.02 image (524280 bytes, heatshrink-compressed), by phase.

    A round takes about 26 s at speed 1 (33 s with the reference upload), so only the rig's default
    (window 1) runs by default; ``--bench-full-image`` adds the pipelined round.
    """
    if window > 1 and bench.speed > 0 and not request.config.getoption("bench_full_image", default=False):
        pytest.skip("pipelined full-size round (~30 s at speed 1): pass --bench-full-image")
    rig = bench.station("6.02")
    assert rig.spec.sim is not None
    image = bench.firmware(rig.spec.sim.node.hw, rig.spec.sim.node.fw)
    _bench_update(benchmark, bench, rig, image, window)


@pytest.mark.benchmark(group="bootloader")
@pytest.mark.parametrize("window", (1, 4), ids=["window1", "window4"])
def test_bootloader_upload(benchmark: Any, bench: BenchRack, window: int) -> None:
    """Bootloader upload over USB (ERASE_BOOTLOADER, then 384-byte writes at 0x60000) on 5.02."""
    rig = bench.station("5.02")
    image = bench.bootloader()
    timing: dict[str, float] = {}

    def target() -> UploadResult:
        start = bench.device_seconds(rig)
        result = rig.upload_bootloader(image, window=window)
        timing["device_s"] = bench.device_seconds(rig) - start
        return result

    result = _run_once(benchmark, target)
    floor = bootloader_floor(result.stats.bytes_sent, frames=result.stats.chunks_sent)
    times = result.times
    upload_s = times.erase_s + times.write_s
    benchmark.extra_info.update(
        {
            "window": window,
            "speed": bench.speed,
            "bytes_sent": result.stats.bytes_sent,
            "phases_s": {"erase": times.erase_s, "write": times.write_s, "total": upload_s},
            "floor_s": floor.as_dict(),
            "phase_bytes_per_s": {"write": _per_s(result.stats.bytes_sent, times.write_s)},
            "floor_bytes_per_s": {"write": _per_s(result.stats.bytes_sent, floor.write_s)},
            "rig_over_floor": upload_s / floor.total_s,
            "device_s": timing["device_s"],
        }
    )
    assert result.stats.bytes_sent == len(image.data)
    assert times.erase_s > 0 and times.write_s > 0
    assert floor.total_s <= timing["device_s"] <= floor.total_s + EXTRA_FRAMES_S


@pytest.mark.benchmark(group="config")
def test_config_round_trip(benchmark: Any, bench: BenchRack) -> None:
    """Config round trip as the rig does it: read mcconf + appconf, write both back, read back to verify."""
    rig = bench.station("5.02")
    device: list[float] = []
    with rig.connect() as esc:

        def round_trip() -> None:
            start = bench.device_seconds(rig)
            restore(esc, read_backup(esc))
            device.append(bench.device_seconds(rig) - start)

        benchmark.pedantic(round_trip, rounds=3 if bench.speed else 1, iterations=1)
    device_s = min(device)
    wall_s = benchmark.stats.stats.min if benchmark.stats is not None else None
    benchmark.extra_info.update(
        {
            "speed": bench.speed,
            "device_s": device_s,  # modelled: the firmware's 200 ms per SET, frames, EEPROM programming
            "rig_over_device": wall_s / device_s if wall_s else None,
        }
    )
    assert device_s > 0.4, "two SET_*CONF take the firmware at least 2 x 200 ms of modelled time"
