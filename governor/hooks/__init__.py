"""Coding-agent hooks: govern an agent that talks to its provider directly, from its own hook events.

* ``protocol``: the hook protocol Claude Code and Codex share (the event on
  stdin, the answer on stdout) and the one pipeline every event goes through:
  under the session's state lock, the agent's reader accounts for each new
  model call once (:meth:`governor.Governor.observe`), then the policy is
  asked about the session's next call (:meth:`governor.Governor.check`) and
  the answer denies the tool, stops the session, or warns.
* ``claude_code``: ``governor hook claude-code``; reads the session's
  transcript and its subagents' transcripts by byte offset.
* ``codex``: ``governor hook codex`` (Codex 0.171's hooks); reads the
  session's rollout by byte offset.
* ``state``: the per-session state file, read and written under a lock.
* ``policy_cache``: the validated policy, kept between hook processes.
* ``price_rows``: the price-table rows the hooks looked up, kept between hook
  processes (a hook process reads no whole price table and imports no price
  library once they are there).
"""
