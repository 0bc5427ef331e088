from uringkit import blocking


def test_a_reader_blocked_on_a_pipe_sleeps_and_each_wakeup_is_one_voluntary_switch():
    with blocking.BlockedReader() as reader:
        before = reader.wait_until_asleep()
        assert before.state == "S" and "pipe" in before.wchan
        reader.feed(20)
        after = reader.wait_until_asleep()
        assert 20 <= after.voluntary_switches - before.voluntary_switches <= 25


def test_cpu_hogs_sharing_a_core_are_preempted_not_blocked():
    states = blocking.preemption(seconds=0.5, hogs=2)
    for st in states:
        assert st.involuntary_switches >= 10  # at least every 50 ms, on any scheduler setting seen
        assert st.voluntary_switches <= st.involuntary_switches


def test_context_switch_cost_is_measured_for_processes_and_threads():
    for partner in ("process", "thread"):
        cost = blocking.context_switch_cost(partner, round_trips=5000)
        assert cost.round_trips == 5000
        assert 0.05 < cost.us_per_switch < 100
        # both tasks share one CPU, so every round trip switched the measuring task out once, one way or other
        assert cost.voluntary_switches + cost.involuntary_switches >= 0.9 * cost.round_trips
