"""Station leases on a real labgrid coordinator (labgrid-coordinator and labgrid-exporter on 127.0.0.1).

The exporter publishes static resources (nothing connects to them here); places esc1 and esc2 have
hw=60, esc3 hw=75. Runs are LabgridLeases with their own identities: in this process (several
connections, one subchannel pool each) or in child processes where a run must die (SIGKILL) or race.
Times are printed (-s), not asserted.
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2
from labgrid_lab import Coordinator, Exporter, exporter_yaml, make_place

from rig.station.lease_heartbeat import Heartbeat, run_identity
from rig.station.lease_labgrid import LabgridLeases
from rig.station.lease_labgrid_client import CoordinatorConnection
from rig.station.leases import Lease, LeaseBusy, LeaseError, LeaseLost

pytestmark = pytest.mark.xdist_group("labgrid")

TTL_S = 2.0
KILL_TTL_S = 1.0  # the killed holder's
RACE_S = 1.5
STOP_BOUND_S = 5.0
PLACES = {"esc1": {"hw": "60", "fw": "6_05", "dual": "0"}, "esc2": {"hw": "60", "fw": "6_05", "dual": "0"}}
PLACES["esc3"] = {"hw": "75", "fw": "6_05", "dual": "1"}


def _static(name: str, base: int) -> dict[str, dict[str, object]]:
    return {
        "esc": {"cls": "NetworkSerialPort", "host": "127.0.0.1", "port": base, "protocol": "rfc2217"},
        "relay": {"cls": "ModbusTCPCoil", "host": "127.0.0.1:25020", "coil": base % 10},
        "probe": {"cls": "NetworkService", "address": "127.0.0.1", "port": base + 1000, "username": "pyocd"},
    }


@dataclass
class Lab:
    coordinator: Coordinator
    exporter: Exporter
    admin: CoordinatorConnection
    runs: list[LabgridLeases]

    def run(self, name: str, ttl_s: float = TTL_S) -> LabgridLeases:
        """A run with its own identity (closed by the fixture)."""
        connection = CoordinatorConnection(self.coordinator.address, run_identity("test", name, f"{len(self.runs)}"))
        self.runs.append(LabgridLeases(connection, ttl_s=ttl_s, poll_s=0.05))
        return self.runs[-1]

    def comment(self, place: str) -> str:
        return str(self.admin.run(self.admin.place(place)).comment)

    def acquired(self, place: str) -> str | None:
        return self.admin.run(self.admin.place(place)).acquired

    def ghost(self, place: str, beat_age_s: float) -> str:
        """A run that acquired the place and died: its heartbeat `beat_age_s` old, nothing released."""
        identity = run_identity("test", "ghost", f"{time.monotonic_ns()}")
        connection = CoordinatorConnection(self.coordinator.address, identity)
        try:
            connection.run(connection.rpc("AcquirePlace", pb2.AcquirePlaceRequest(placename=place)))
            beat = Heartbeat(identity, time.time() - beat_age_s, TTL_S, "ghost:1").text()
            connection.run(connection.rpc("SetPlaceComment", pb2.SetPlaceCommentRequest(placename=place, comment=beat)))
        finally:
            connection.close()
        return identity


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    work = tmp_path_factory.mktemp("labgrid")
    coordinator = Coordinator(work / "coordinator")
    exporter = Exporter(
        work, coordinator, "rack1", exporter_yaml({n: _static(n, 24001 + i) for i, n in enumerate(PLACES)})
    )
    admin: CoordinatorConnection | None = None
    try:
        admin = CoordinatorConnection(coordinator.address, run_identity("test", "admin", "0"))
        exporter.start(admin)
        for name, tags in PLACES.items():
            make_place(admin, name, f"rack1/{name}/*", tags)
        yield Lab(coordinator, exporter, admin, [])
    finally:
        if admin is not None:
            admin.close()
        exporter.stop()
        coordinator.stop()


@pytest.fixture
def runs(lab: Lab) -> Iterator[Lab]:
    """The lab, every place free again after the test."""
    yield lab
    for run in lab.runs:
        run.close()
    lab.runs.clear()
    for name in PLACES:
        holder = lab.acquired(name)
        if holder:
            lab.admin.run(lab.admin.rpc("ReleasePlace", pb2.ReleasePlaceRequest(placename=name, fromuser=holder)))


def test_a_run_holds_a_place_renews_its_heartbeat_and_gives_it_back(runs: Lab) -> None:
    one, other = runs.run("one"), runs.run("other")
    acquire_s, release_s = [], []
    for _ in range(10):
        start = time.perf_counter()
        lease = one.acquire("esc1", bound_s=1)
        acquire_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        lease.release()
        release_s.append(time.perf_counter() - start)
    print(
        f"\nlabgrid lease acquire: median {statistics.median(acquire_s) * 1000:.1f} ms, "
        f"release: median {statistics.median(release_s) * 1000:.1f} ms (n=10)"
    )
    with one.acquire("esc1", bound_s=1, holder="job-1") as lease:
        assert runs.acquired("esc1") == one.identity == lease.info.token
        first = Heartbeat.parse(runs.comment("esc1"))
        assert first is not None and first.identity == one.identity and first.holder == "job-1"
        with pytest.raises(LeaseBusy, match=r"held by job-1 as test/one\+0 until .*labgrid place esc1"):
            other.acquire("esc1", bound_s=0.2)
        time.sleep(TTL_S / 3 + 0.3)
        renewed = Heartbeat.parse(runs.comment("esc1"))
        assert renewed is not None and renewed.beat > first.beat  # the heartbeat thread wrote again
        lease.check()
    assert runs.acquired("esc1") is None
    assert runs.comment("esc1").startswith("free (last: job-1, released ")


def test_a_place_a_person_holds_is_never_taken_over(runs: Lab) -> None:
    person = CoordinatorConnection(runs.coordinator.address, "desk/alice")  # labgrid-client's host/user
    try:
        person.run(person.rpc("AcquirePlace", pb2.AcquirePlaceRequest(placename="esc3")))
        with pytest.raises(
            LeaseBusy, match=r"desk/alice \(not a vesc-rig run, so never taken over\) until they release"
        ):
            runs.run("taker", ttl_s=0.3).acquire("esc3", bound_s=1.0)  # past any ttl of the taker
        assert runs.acquired("esc3") == "desk/alice"
    finally:
        person.close()


HOLDER = textwrap.dedent(
    """
    import sys, time
    from rig.station.lease_heartbeat import run_identity
    from rig.station.lease_labgrid_client import CoordinatorConnection
    from rig.station.lease_labgrid import LabgridLeases
    connection = CoordinatorConnection(sys.argv[1], run_identity("test", "doomed", "1"))
    lease = LabgridLeases(connection, ttl_s=float(sys.argv[2])).acquire("esc2", bound_s=5, holder="doomed-job")
    print("held", flush=True)
    time.sleep(60)
    """
)


def test_a_sigkilled_holders_place_is_taken_after_the_ttl_and_not_before(
    runs: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, runs.coordinator.address, str(KILL_TTL_S)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        time.sleep(KILL_TTL_S * 0.8)  # past the first renewal
        holder.send_signal(signal.SIGKILL)
        holder.wait(STOP_BOUND_S)
        killed = time.time()
        beat = Heartbeat.parse(runs.comment("esc2"))
        assert beat is not None and beat.holder == "doomed-job"  # the dead run's last heartbeat stays
        taker = runs.run("taker")
        if time.time() - beat.beat < KILL_TTL_S - 0.2:  # the heartbeat is still young: refused, holder named
            with pytest.raises(LeaseBusy, match=r"held by doomed-job as test/doomed\+1"):
                taker.acquire("esc2", bound_s=0)
        with caplog.at_level("WARNING"), taker.acquire("esc2", bound_s=KILL_TTL_S * 3) as lease:
            taken = time.time()
            assert runs.acquired("esc2") == taker.identity == lease.info.token
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(STOP_BOUND_S)
    assert taken - beat.beat > KILL_TTL_S  # not before the dead holder's ttl ran out
    assert "took over labgrid place esc2 from stale holder doomed-job (run test/doomed+1)" in caplog.text
    print(
        f"\ntakeover after SIGKILL: {taken - beat.beat - KILL_TTL_S:.2f} s after the ttl ({KILL_TTL_S:g} s) ran out, "
        f"{taken - killed:.2f} s after the kill"
    )


RACER = textwrap.dedent(
    """
    import json, random, sys, time
    from rig.station.leases import LeaseBusy
    from rig.station.lease_heartbeat import run_identity
    from rig.station.lease_labgrid_client import CoordinatorConnection
    from rig.station.lease_labgrid import LabgridLeases
    connection = CoordinatorConnection(sys.argv[1], run_identity("test", "racer", sys.argv[2]))
    leases = LabgridLeases(connection, ttl_s=30)
    print("ready", flush=True)
    sys.stdin.readline()
    held, busy, end = [], 0, time.time() + float(sys.argv[3])
    while time.time() < end:
        try:
            lease = leases.acquire("esc1", bound_s=0)
        except LeaseBusy:
            busy += 1
            continue
        start = time.time()
        mine = connection.run(connection.place("esc1")).acquired == connection.identity
        time.sleep(random.uniform(0.0, 0.02))
        held.append((start, time.time(), mine))
        lease.release()
    print(json.dumps({"held": held, "busy": busy}), flush=True)
    """
)


def test_two_concurrent_runs_never_hold_one_place(runs: Lab) -> None:
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, runs.coordinator.address, str(n), str(RACE_S)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in (1, 2)
    ]
    try:
        for racer in racers:
            assert racer.stdout is not None and racer.stdout.readline().strip() == "ready"
        for racer in racers:
            assert racer.stdin is not None
            racer.stdin.write("go\n")
            racer.stdin.flush()
        results = [json.loads(racer.communicate(timeout=30)[0].strip().splitlines()[-1]) for racer in racers]
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.wait(STOP_BOUND_S)
    a, b = results[0]["held"], results[1]["held"]
    assert a and b, results  # both won sometimes: the place was contended
    assert all(mine for _, _, mine in a + b)  # while a run held it, the coordinator said it was that run's
    overlaps = [(x, y) for x in a for y in b if x[0] < y[1] and y[0] < x[1]]
    assert not overlaps
    print(f"\nracing runs: {len(a)} + {len(b)} holds, {results[0]['busy'] + results[1]['busy']} refusals, no overlap")


def _race(takers: list[LabgridLeases], place: str) -> list[object]:
    """Every taker tries the place at the same moment (bound 0): its lease or its LeaseBusy."""
    barrier = threading.Barrier(len(takers))
    got: list[object] = []

    def take(leases: LabgridLeases) -> None:
        barrier.wait()
        try:
            got.append(leases.acquire(place, bound_s=0))
        except LeaseBusy as exc:
            got.append(exc)

    threads = [threading.Thread(target=take, args=(taker,)) for taker in takers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(STOP_BOUND_S * 2)
    return got


def test_racing_takers_of_a_dead_run_get_the_place_once(runs: Lab) -> None:
    takers = [runs.run("taker-a"), runs.run("taker-b")]
    for _ in range(5):
        runs.ghost("esc3", beat_age_s=TTL_S * 2)
        got = _race(takers, "esc3")
        leases = [g for g in got if isinstance(g, Lease)]
        assert len(got) == 2 and len(leases) == 1, got
        assert runs.acquired("esc3") == leases[0].info.token
        leases[0].release()


def test_any_free_station_with_the_tags(runs: Lab, caplog: pytest.LogCaptureFixture) -> None:
    owner, waiter = runs.run("owner"), runs.run("waiter")
    first = waiter.acquire_any({"hw": "60"}, bound_s=2)
    assert first.info.key in ("esc1", "esc2")
    first.release()
    held = [owner.acquire("esc1", bound_s=1), owner.acquire("esc2", bound_s=1)]
    with pytest.raises(LeaseBusy, match="any labgrid place with hw=60.*esc1: .*owner"):
        waiter.acquire_any({"hw": "60"}, bound_s=0.5)
    release = threading.Timer(0.5, held[1].release)
    release.start()
    start = time.monotonic()
    with waiter.acquire_any({"hw": "60"}, bound_s=10) as lease:  # waits in the coordinator's queue
        waited = time.monotonic() - start
        assert lease.info.key == "esc2" and runs.acquired("esc2") == waiter.identity
    release.join()
    held[0].release()
    ghost = runs.ghost("esc3", beat_age_s=TTL_S * 2)
    with caplog.at_level("WARNING"), waiter.acquire_any({"hw": "75", "dual": "1"}, bound_s=5) as lease:
        assert lease.info.key == "esc3"
    assert (
        f"released stale holder ghost:1 (run {ghost})" in caplog.text or "took over labgrid place esc3" in caplog.text
    )
    with pytest.raises(LeaseBusy, match="no place has these tags"):
        waiter.acquire_any({"hw": "999"}, bound_s=0.2)
    reservations = runs.admin.run(runs.admin.rpc("GetReservations", pb2.GetReservationsRequest())).reservations
    assert not [r for r in reservations if r.owner == waiter.identity]  # cancelled once it held a place
    print(f"\nacquire_any(hw=60): got esc2 {waited - 0.5:.2f} s after it was released")


def test_a_missing_place_and_a_place_without_exporter_are_clear_errors(runs: Lab) -> None:
    run = runs.run("asker")
    with pytest.raises(LeaseError, match=r"has no place 'esc9' \(places: esc1, esc2, esc3\)"):
        run.acquire("esc9", bound_s=0)
    make_place(runs.admin, "esc4", "rack2/esc4/*", {"hw": "60"})  # no exporter rack2
    try:
        with pytest.raises(LeaseBusy, match=r"labgrid place esc4: no live resource for its match rack2/esc4/\*"):
            run.acquire("esc4", bound_s=0.2)
        with pytest.raises(LeaseError, match=r"esc4: no live resource for its match rack2/esc4/\* \(exporter down\?\)"):
            run.place_resources("esc4")
    finally:
        runs.admin.run(runs.admin.rpc("DeletePlace", pb2.DeletePlaceRequest(name="esc4")))


def test_a_coordinator_restart_loses_the_lease_at_the_next_check(runs: Lab) -> None:
    run = runs.run("survivor", ttl_s=30)
    runs.coordinator.wait_saved(list(PLACES))
    lease = run.acquire("esc1", bound_s=1)
    lease.check()
    runs.coordinator.kill()
    killed = time.monotonic()
    while run.connection.verified.is_set():  # a check before the stream breaks still passes: the ttl holds
        assert time.monotonic() < killed + STOP_BOUND_S, "the broken stream to the coordinator was never noticed"
        time.sleep(0.01)
    raised: list[BaseException] = []

    def next_step() -> None:  # the run's next step, while the coordinator is down
        try:
            lease.check()
        except LeaseLost as exc:
            raised.append(exc)

    step = threading.Thread(target=next_step)
    step.start()
    time.sleep(0.5)
    assert step.is_alive()  # the step waits: nobody can tell yet whether the place is still its own
    runs.coordinator.start()
    back = time.monotonic()
    step.join(STOP_BOUND_S * 2)
    noticed = time.monotonic()
    assert not step.is_alive() and len(raised) == 1
    assert "lease on station esc1 lost: labgrid place esc1 is now held by nobody" in str(raised[0])
    assert "the coordinator restarted" in str(raised[0])
    print(f"\ncoordinator restart: down {back - killed:.2f} s; lease lost {noticed - back:.2f} s after it was back")
    lease.release()  # nothing to give back: no error
    runs.exporter.start(runs.admin)  # labgrid-exporter exits when its coordinator goes (systemd restarts it)
    with run.acquire("esc1", bound_s=5) as again:  # the places were saved: the run can hold it again
        assert runs.acquired("esc1") == again.info.token
