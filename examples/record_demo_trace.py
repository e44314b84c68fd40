"""Record the demo trace that the README replays: a simulated coding agent, offline.

    python examples/record_demo_trace.py [OUT]   (default: examples/traces/coding-agent-demo.jsonl)

Twelve agent runs go through the real litellm SDK (``mock_response=``, no
network) wrapped by the governor, under ``examples/policies/record-audit.yaml``:
the shipped coding-agent policy in audit mode, so every call is sent unchanged
and the governor only records. The runs show what agents really do: growing
histories, a whole-repository dump, an agent that repeats the same call, a
retry storm, housekeeping calls sent to the premium model. Each run ends with
an outcome (accepted / rejected), so a replay can report cost per accepted task.

The output is deterministic except for timestamps and decision ids.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from governor import Governor
from governor._litellm import litellm
from governor.integrations.litellm import GovernedLiteLLM

HERE = Path(__file__).resolve().parent
POLICY = HERE / "policies" / "record-audit.yaml"
DEFAULT_OUT = HERE / "traces" / "coding-agent-demo.jsonl"

SYSTEM = {"role": "system", "content": "You are a careful coding agent. Plan, edit, run the tests, repeat."}
WORDS = "def class return import self value result test assert config parser token budget".split()


def source_file(rng: random.Random, lines: int) -> str:
    """Plausible code-like text of about ``lines`` lines (~12 tokens each)."""
    return "\n".join(
        f"    {rng.choice(WORDS)}_{i} = {rng.choice(WORDS)}({rng.choice(WORDS)}, {i})" for i in range(lines)
    )


def reply(messages: list[dict], text: str) -> object:
    """A mock response whose usage is the real token count of the request.

    litellm's plain ``mock_response="..."`` reports a fixed 10/20 tokens, which
    would make the recorded trace useless for replay.
    """
    lm = litellm()
    prompt = lm.token_counter(model="claude-sonnet-4-5", messages=messages)
    completion = lm.token_counter(model="claude-sonnet-4-5", text=text, count_response_tokens=True)
    return lm.ModelResponse(
        model="claude-sonnet-4-5",
        choices=[{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        usage=lm.Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion),
    )


def agent_run(llm: GovernedLiteLLM, gov: Governor, run: int, rng: random.Random) -> None:
    """One task attempt: a plan/edit/test loop with a history that keeps growing."""
    kind = [
        "normal",
        "normal",
        "repo-dump",
        "normal",
        "loop",
        "normal",
        "retry-storm",
        "long",
        "normal",
        "loop",
        "normal",
        "long",
    ][run]
    steps = {"normal": 8, "repo-dump": 6, "loop": 9, "retry-storm": 7, "long": 34}[kind]
    messages: list[dict] = [SYSTEM, {"role": "user", "content": f"Task {run}: fix the failing test in module_{run}.py"}]
    with gov.run(run_id=f"demo-run-{run:02d}", user=f"dev-{run % 3}", team="platform", agent="coder"):
        for step in range(steps):
            text = f"Step {step}: editing module_{run}.py and running the tests."
            mock: object = reply(messages, text)
            if kind == "retry-storm" and step >= 3:
                mock = "litellm.RateLimitError"  # the provider throttles; the agent retries blindly
            try:
                llm.completion(model="claude-sonnet-4-5", messages=list(messages), max_tokens=2048, mock_response=mock)
            except Exception:  # noqa: BLE001 - the recorder already logged the error
                continue
            if kind == "loop" and step >= 2:
                continue  # the agent ignores the answer and asks the very same thing again
            messages.append({"role": "assistant", "content": text})
            size = 14000 if (kind == "repo-dump" and step == 1) else rng.randint(60, 220)
            messages.append({"role": "user", "content": f"Tool output (pytest, files):\n{source_file(rng, size)}"})
        # housekeeping at the end of each run: a summary for the PR, on the premium model
        with gov.run(task="summarize"):
            summary = [SYSTEM, {"role": "user", "content": f"Summarize the change for run {run} in two lines."}]
            llm.completion(
                model="claude-sonnet-4-5",
                messages=summary,
                max_tokens=256,
                mock_response=reply(summary, "Fixed the off-by-one in the parser; tests pass."),
            )
    outcome = "accepted" if kind in ("normal", "long") and run % 4 != 3 else "rejected"
    gov.record_outcome(f"demo-run-{run:02d}", outcome)


def main(out: Path = DEFAULT_OUT) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    gov = Governor.from_path(POLICY, record_to=out, log=None)
    llm = GovernedLiteLLM(gov)
    rng = random.Random(7)
    for run in range(12):
        agent_run(llm, gov, run, rng)
    gov.close()
    print(f"recorded {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT)
