"""Trace importers: recorded LLM traffic in several formats, normalised for replay."""

from governor.traces.model import TraceCall, TraceIssue, TraceRun, TraceSet
from governor.traces.registry import ImportContext, importers, load_traces, register

__all__ = ["ImportContext", "TraceCall", "TraceIssue", "TraceRun", "TraceSet", "importers", "load_traces", "register"]
