"""topology.placement: auto picks the best measured placement the host allows; set keys win."""
from __future__ import annotations

import os

import msgspec
import pytest

from alphad.daemon.config import ConfigError, decode_config
from alphad.daemon.shell import affinity
from alphad.daemon.shell.affinity import (Host, choose_placement, describe, fifo_permitted, format_cpu_list,
                                          parse_cpu_list, probe_host, resolve_placement)
from alphad.daemon.shell.config import Topology
from alphad.daemon.shell.topology import PRESETS
from alphad.ipc import frames

MIN = "universe: [{id: 0, symbol: AAA}]\n"
FIVE, FUSED, SINGLE = PRESETS["five"], PRESETS["fused"], PRESETS["single"]


def test_cpu_list_when_ranges_and_singles_then_parsed_and_formatted_back():
    assert parse_cpu_list("0-2,5\n") == [0, 1, 2, 5]
    assert parse_cpu_list("") == [] and parse_cpu_list("\n") == []
    assert format_cpu_list([5, 0, 1, 2]) == "0-2,5"


# -- the pure chooser -----------------------------------------------------------------

def test_choose_when_two_cpus_and_fifo_then_the_readme_placement():
    c = choose_placement(FIVE, Host((0, 1), (), True))
    assert c.cpus == {"feed": 0, "features": 0, "infer": 1, "risk": 1, "router": 1}
    assert (c.sched, c.idle_poll, c.infer_keep_warm_us) == ("fifo", True, 100)
    assert c.why == "2 CPUs, SCHED_FIFO permitted"


def test_choose_when_two_cpus_without_fifo_then_same_pinning_other_and_no_idle_poll():
    c = choose_placement(FIVE, Host((0, 1), (), False))
    assert c.cpus == {"feed": 0, "features": 0, "infer": 1, "risk": 1, "router": 1}
    assert (c.sched, c.idle_poll, c.infer_keep_warm_us) == ("other", False, 100)
    assert "SCHED_FIFO not permitted" in c.why


@pytest.mark.parametrize("fifo", [True, False])
def test_choose_when_one_cpu_then_everything_on_it_fifo_if_allowed(fifo):
    c = choose_placement(FIVE, Host((3,), (), fifo))
    assert c.cpus == {s: 3 for s in ("feed", "features", "infer", "risk", "router")}
    assert (c.sched, c.idle_poll) == (("fifo", True) if fifo else ("other", False))
    assert c.why.startswith("1 CPU,")


def test_choose_when_two_cpus_fused_then_feed_to_risk_on_one_router_on_the_other():
    c = choose_placement(FUSED, Host((0, 1), (), True))
    assert c.cpus == {"feed": 0, "router": 1}
    assert (c.sched, c.infer_keep_warm_us) == ("fifo", 100)


def test_choose_when_four_cpus_then_feed_and_features_share_and_the_rest_get_one_each():
    c = choose_placement(FIVE, Host((0, 1, 2, 3), (), True))
    assert c.cpus == {"feed": 0, "features": 0, "infer": 1, "risk": 2, "router": 3}
    # fused has enough without CPU 0
    assert choose_placement(FUSED, Host((0, 1, 2, 3), (), True)).cpus == {"feed": 1, "router": 2}


def test_choose_when_sixteen_cpus_then_one_cpu_per_process_skipping_cpu_0():
    c = choose_placement(FIVE, Host(tuple(range(16)), (), True))
    assert c.cpus == {"feed": 1, "features": 2, "infer": 3, "risk": 4, "router": 5}
    assert choose_placement(SINGLE, Host(tuple(range(16)), (), False)).cpus == {"feed": 1}


def test_choose_when_isolated_cpus_then_they_are_taken_first():
    c = choose_placement(FIVE, Host(tuple(range(16)), (10, 11, 12, 13, 14, 15), True))
    assert c.cpus == {"feed": 10, "features": 11, "infer": 12, "risk": 13, "router": 14}
    assert c.why == "16 CPUs (isolated 10-15), SCHED_FIFO permitted"
    # too few isolated CPUs: the rest come from the others, CPU 0 still last
    c = choose_placement(FIVE, Host(tuple(range(8)), (6, 7), True))
    assert sorted(c.cpus.values()) == [1, 2, 3, 6, 7] and c.cpus["feed"] == 1


def test_choose_when_isolated_cpus_outside_the_affinity_then_unused_and_said_so():
    c = choose_placement(FIVE, Host((0, 1), (4, 5), True))
    assert set(c.cpus.values()) == {0, 1}
    assert "isolated CPUs 4-5 are outside this process's affinity" in c.why


def test_choose_when_a_process_polls_then_no_fifo_and_pinned_only_with_a_cpu_each():
    c = choose_placement(FUSED, Host((0, 1), (), True), polling=["feed"])
    assert c.cpus == {"feed": 0, "router": 1}
    assert (c.sched, c.idle_poll, c.infer_keep_warm_us) == ("other", False, 100)
    c = choose_placement(FIVE, Host((0, 1), (), True), polling=["feed", "features", "infer", "risk", "router"])
    assert (c.cpus, c.sched, c.idle_poll) == ({}, "other", False)
    assert "not pinned" in c.why


def test_choose_when_no_cpu_usable_then_error():
    with pytest.raises(ValueError, match="no CPU"):
        choose_placement(FIVE, Host((), (), True))


# -- resolving the config ---------------------------------------------------------------

def test_resolve_when_auto_and_nothing_set_then_every_key_chosen_and_reason_given():
    topo, p = resolve_placement(Topology(), host=Host((0, 1), (), True))
    assert (topo.cpus, topo.sched, topo.idle_poll, topo.infer_keep_warm_us) == (
        {"feed": 0, "features": 0, "infer": 1, "risk": 1, "router": 1}, "fifo", True, 100)
    assert p == frames.Placement(mode="auto", cpus=topo.cpus, sched="fifo", idle_poll=True, infer_keep_warm_us=100,
                                 reason="2 CPUs, SCHED_FIFO permitted -> feed,features@0 infer,risk,router@1 "
                                        "fifo idle-poll keep-warm 100us")


def test_resolve_when_cpus_and_sched_set_then_they_override_auto_for_those_keys():
    topo, p = resolve_placement(Topology(cpus={"feed": 1}, sched="other"), host=Host((0, 1), (), True))
    assert topo.cpus == {"feed": 1} and topo.sched == "other"
    assert topo.infer_keep_warm_us == 100
    assert topo.idle_poll is False  # the pollers go with SCHED_FIFO, and config chose `other`
    assert p.reason.endswith("; cpus, sched from config -> feed@1 features,infer,risk,router unpinned other "
                             "keep-warm 100us")
    topo, _ = resolve_placement(Topology(infer_keep_warm_us=0, idle_poll=False), host=Host((0, 1), (), True))
    assert (topo.infer_keep_warm_us, topo.idle_poll, topo.sched) == (0, False, "fifo")


def test_resolve_when_the_feed_replays_at_full_speed_on_every_cpu_then_no_fifo_else_fifo_kept():
    # the stages never idle: SCHED_FIFO on every CPU would starve the supervisor and control port
    topo, p = resolve_placement(Topology(), host=Host((0, 1), (), True), full_speed=True)
    assert topo.sched == "other" and not topo.idle_poll and topo.cpus == {"feed": 0, "features": 0, "infer": 1,
                                                                           "risk": 1, "router": 1}
    assert "feed.speed max keeps every CPU busy" in p.reason
    topo, _ = resolve_placement(Topology(), host=Host(tuple(range(8)), (), True), full_speed=True)
    assert topo.sched == "fifo"  # a CPU to spare: the supervisor runs there
    topo, _ = resolve_placement(Topology(sched="fifo"), host=Host((0, 1), (), True), full_speed=True)
    assert topo.sched == "fifo"  # set in config: kept


def test_full_speed_when_a_recording_replays_at_max_then_true_else_false():
    from alphad.daemon.feed.config import Feed
    from alphad.daemon.shell.affinity import replays_at_full_speed

    assert replays_at_full_speed(Feed(speed="max"))
    assert not replays_at_full_speed(Feed(speed="realtime")) and not replays_at_full_speed(Feed(speed="10"))


def test_resolve_when_wait_spin_then_auto_never_picks_fifo():
    topo, p = resolve_placement(Topology(name="fused", wait="spin"), host=Host((0, 1), (), True))
    assert topo.sched == "other" and not topo.idle_poll
    topo, _ = resolve_placement(Topology(wait_overrides={"router": "yield"}), host=Host((0, 1), (), True))
    assert topo.sched == "other"


def test_resolve_when_manual_then_unset_keys_are_off_and_the_host_is_not_probed(monkeypatch):
    monkeypatch.setattr(affinity, "probe_host", lambda *a, **k: pytest.fail("manual must not probe"))
    topo, p = resolve_placement(Topology(placement="manual"))
    assert (topo.cpus, topo.sched, topo.idle_poll, topo.infer_keep_warm_us) == ({}, "other", False, 0)
    assert p.mode == "manual" and "not pinned other" in p.reason
    topo, _ = resolve_placement(Topology(placement="manual", sched="fifo", cpus={"feed": 0}))
    assert (topo.cpus, topo.sched) == ({"feed": 0}, "fifo")


def test_resolve_when_already_resolved_then_unchanged_without_probing(monkeypatch):
    topo, _ = resolve_placement(Topology(), host=Host((0, 1), (), True))
    monkeypatch.setattr(affinity, "probe_host", lambda *a, **k: pytest.fail("nothing left to choose"))
    again, p = resolve_placement(topo)
    assert again == topo and p.mode == "auto"


def test_resolve_when_written_to_yaml_then_a_stage_reads_the_same_placement():
    cfg = decode_config(MIN)
    topo, _ = resolve_placement(cfg.topology, host=Host((0, 1), (), False))
    back = decode_config(msgspec.yaml.encode(msgspec.structs.replace(cfg, topology=topo)))
    assert back.topology == topo and not back.topology.unset_placement_keys()


# -- config ---------------------------------------------------------------------------------

def test_decode_when_placement_keys_left_out_then_auto_with_them_unset():
    t = decode_config(MIN).topology
    assert t.placement == "auto" and t.unset_placement_keys() == ["cpus", "sched", "idle_poll", "infer_keep_warm_us"]
    t = decode_config(MIN + "topology: {placement: manual, sched: fifo, cpus: null}\n").topology
    assert (t.placement, t.sched, t.cpus) == ("manual", "fifo", None)


def test_decode_when_placement_unknown_then_error_names_path():
    with pytest.raises(ConfigError, match=r"\$\.topology\.placement"):
        decode_config(MIN + "topology: {placement: best}\n")


def test_repo_config_when_decoded_then_auto_chooses_every_key(repo_root):
    from alphad.daemon.config import load_config

    t = load_config(repo_root / "config.yaml")[0].topology
    assert t.placement == "auto" and len(t.unset_placement_keys()) == 4


# -- probing the host ---------------------------------------------------------------------

def test_probe_when_isolated_file_lists_cpus_then_read(tmp_path):
    f = tmp_path / "isolated"
    f.write_text("2-3\n")
    h = probe_host(10, isolated_path=str(f))
    assert h.isolated == (2, 3) and h.usable == tuple(sorted(os.sched_getaffinity(0)))
    assert probe_host(10, isolated_path=str(tmp_path / "absent")).isolated == ()


def test_fifo_permitted_when_probed_then_policy_put_back():
    before = os.sched_getscheduler(0), os.sched_getparam(0).sched_priority
    fifo_permitted(14)
    assert (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority) == before


def test_describe_when_not_pinned_then_says_so():
    assert describe(FIVE, Topology(cpus={}, sched="other", idle_poll=False, infer_keep_warm_us=0)) == \
        "feed,features,infer,risk,router not pinned other"


# -- ctl status -------------------------------------------------------------------------------

def test_status_when_built_then_reports_the_placement_and_survives_the_wire(repo_root):
    from alphad.daemon.supervisor.supervisor import Supervisor

    cfg = decode_config(MIN + f"shm: {{prefix: alphad-ut-placement-{os.getpid()}}}\n"
                        "metrics: {enabled: false}\njournal: {enabled: false}\n")
    topo, placement = resolve_placement(cfg.topology, host=Host((0, 1), (), True))
    sup = Supervisor(msgspec.structs.replace(cfg, topology=topo), repo_root / "config.yaml", repo_root,
                     placement=placement)
    sup.create_segments()
    try:
        st = sup.status()
    finally:
        for r in sup.rings.values():
            r.close()
        sup.remove_segments()
    reply = frames.reply_decoder.decode(frames.encoder.encode(st))
    assert reply.placement == placement
    got = msgspec.to_builtins(reply)["placement"]
    assert got == {"mode": "auto", "cpus": {"feed": 0, "features": 0, "infer": 1, "risk": 1, "router": 1},
                   "sched": "fifo", "idle_poll": True, "infer_keep_warm_us": 100, "reason": placement.reason}
