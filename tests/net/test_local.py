"""The local-run harness: the same party functions over threads and over processes (gRPC + mTLS)."""

from __future__ import annotations

import functools
import time

import numpy as np
import pytest

from misuan.errors import DataError, PeerDisconnectedError
from misuan.net.channel import Channel
from misuan.net.disclosure import MemoryRecorder
from misuan.net.local import ChannelOpener, LocalOutcome, Transport, run_local, run_local_openers
from misuan.protocols.secure_sum import secure_sum

TRANSPORTS: list[Transport] = ["threads", "processes"]


def _ledger_view(out: LocalOutcome) -> list[tuple]:
    return sorted((d.job_id, d.step, d.discloser, d.recipient, d.what, d.shape, d.form) for d in out.disclosures)


def _refuse_data(chan: Channel) -> None:
    raise DataError("bank.csv: column 'AGE' is not numeric")


def _wait_for_bank(chan: Channel) -> object:
    return chan.recv("bank", "never")


def _send_and_receive(chan: Channel) -> int:
    peer = chan.peers[0]
    chan.send(peer, "hello", {"from": chan.party})
    return int(len(chan.recv(peer, "hello")))


def _sum_with_own_recorder(recorder: MemoryRecorder, values: np.ndarray, open_channel: ChannelOpener) -> int:
    return int(secure_sum(open_channel(recorder), values)[0])


def test_same_protocol_function_gives_the_same_result_over_both_transports() -> None:
    rng = np.random.default_rng(11)
    data = {p: rng.integers(-(10**9), 10**9, size=64) for p in ("bank", "partner", "telecom")}
    fns = {p: functools.partial(secure_sum, values=data[p]) for p in data}
    threads = run_local(fns, transport="threads", job_id="sum-both")
    processes = run_local(fns, transport="processes", job_id="sum-both")
    for p in data:
        np.testing.assert_array_equal(threads[p].result, sum(data.values()))
        np.testing.assert_array_equal(processes[p].result, threads[p].result)
        assert _ledger_view(processes[p]) == _ledger_view(threads[p]) != []
        assert processes[p].stats["bytes_sent"] == threads[p].stats["bytes_sent"] > 0
        assert processes[p].seconds > 0 and threads[p].seconds > 0
        assert processes[p].max_rss_bytes > 0 and threads[p].max_rss_bytes == 0  # threads share one process


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_failing_party_releases_its_peers_and_its_error_is_raised(transport: Transport) -> None:
    start = time.monotonic()
    with pytest.raises(DataError, match="column 'AGE' is not numeric"):
        run_local({"bank": _refuse_data, "partner": _wait_for_bank}, transport=transport, timeout_s=60)
    assert time.monotonic() - start < 15  # the partner stopped at once, not after its 60 s timeout
    out = run_local({"bank": _refuse_data, "partner": _wait_for_bank}, transport=transport, raise_errors=False)
    assert isinstance(out["bank"].error, DataError)
    assert isinstance(out["partner"].error, PeerDisconnectedError)
    assert out["partner"].result is None


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_transcripts_keep_what_each_party_received(transport: Transport) -> None:
    out = run_local({"bank": _send_and_receive, "partner": _send_and_receive}, transport=transport, transcripts=True)
    assert out["bank"].transcript == [("partner", "hello", {"from": "partner"})]
    assert out["partner"].transcript == [("bank", "hello", {"from": "bank"})]
    assert run_local({"bank": _send_and_receive, "partner": _send_and_receive})["bank"].transcript is None


def test_a_party_opening_its_own_channel_records_to_its_recorder_and_its_outcome() -> None:
    recorders = {p: MemoryRecorder() for p in ("bank", "partner")}
    values = {"bank": np.array([3]), "partner": np.array([4])}
    out = run_local_openers(
        {p: functools.partial(_sum_with_own_recorder, recorders[p], values[p]) for p in recorders}, job_id="own"
    )
    for p, rec in recorders.items():
        assert out[p].result == 7
        assert rec.entries == out[p].disclosures != []


def test_unknown_transport_is_refused() -> None:
    with pytest.raises(ValueError, match="transport must be 'threads' or 'processes'"):
        run_local({"bank": _send_and_receive}, transport="sockets")  # type: ignore[arg-type]


def _refuses_a_parameter(chan: Channel) -> None:
    from misuan.params import ParamError

    raise ParamError("n_bins", "must be an integer from 1 to 1000, not 10.5", "woe")


def test_an_error_outside_the_error_tree_module_keeps_its_kind_across_processes() -> None:
    from misuan.errors import ConfigError

    with pytest.raises(ConfigError, match="n_bins: must be an integer") as caught:
        run_local({"a": _refuses_a_parameter, "b": _refuses_a_parameter}, transport="processes")
    assert caught.value.exit_code == 2
