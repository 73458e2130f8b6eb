"""Trimming a conversation's history to the model's context budget."""

from workers import conversations as turns
from workers.tools import get_tool


def exchange(number: int, size: int = 400) -> list[dict[str, str]]:
    return [
        {"role": "user", "content": f"q{number} " + "x" * size},
        {"role": "assistant", "content": f"a{number} " + "y" * size},
    ]


def test_everything_fits_a_large_budget():
    history = exchange(1) + exchange(2)
    assert turns.trim_history(history, budget=10_000) == history


def test_the_oldest_turns_are_dropped_first():
    history = exchange(1) + exchange(2) + exchange(3)
    per_turn = turns.message_tokens(history[0]["content"])
    kept = turns.trim_history(history, budget=4 * per_turn)
    assert [turn["content"][:2] for turn in kept] == ["q2", "a2", "q3", "a3"]


def test_a_kept_history_never_starts_with_an_orphaned_answer():
    history = exchange(1) + exchange(2)
    per_turn = turns.message_tokens(history[0]["content"])
    kept = turns.trim_history(history, budget=3 * per_turn)  # a2, q2 and a1, whose question is cut
    assert kept[0]["role"] == "user"
    assert [turn["content"][:2] for turn in kept] == ["q2", "a2"]


def test_no_budget_means_no_history():
    assert turns.trim_history(exchange(1), budget=0) == []


def test_at_most_the_tools_turn_limit_is_kept():
    history = [turn for number in range(40) for turn in exchange(number, size=1)]
    kept = turns.trim_history(history, budget=1_000_000)
    assert len(kept) == turns.MAX_TURNS and kept[-1]["content"].startswith("a39")


def test_the_budget_leaves_room_for_the_reply_and_the_prompt():
    coach = get_tool("coach")
    budget = turns.history_budget(coach, "gpt-4o-mini", {"message": "hi"}, {"name": "Ada"})
    assert budget < 128_000 - coach.max_output_tokens
    assert budget > 128_000 - coach.max_output_tokens - 2_000  # the system prompt is well under 2k tokens


def test_context_windows_match_dated_model_names_and_default_small():
    assert turns.context_window("gpt-4o-mini-2024-07-18") == 128_000
    assert turns.context_window("llama3:8b") == turns.DEFAULT_CONTEXT_WINDOW


def test_a_turn_longer_than_the_tools_limit_is_cut_to_fit_its_schema():
    long_reply = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "z" * 20_000}]
    kept = turns.trim_history(long_reply, budget=1_000_000)
    assert len(kept[1]["content"]) == turns.MAX_TURN_CHARS
    assert get_tool("coach").input_errors({"message": "next", "history": kept}) == {}
