"""Coding-agent hooks: govern an agent that talks to its provider directly, from its own hook events.

* ``claude_code``: ``governor hook claude-code``, a command for Claude Code's
  hooks. Each event reads what the session's transcript gained since the last
  event (by byte offset, state kept in a small file per session), accounts for
  each new model call once (:meth:`governor.Governor.observe`), asks the policy
  about the session's next call (:meth:`governor.Governor.check`) and answers
  in the hook protocol: deny the tool, stop the session, or warn.
* ``state``: the per-session state file, read and written under a lock.
"""
