"""Governor decisions on your OpenTelemetry spans (attributes under ``governor.``). Offline.

python examples/otel_spans.py
"""

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from governor import Governor, load_policy

POLICY = """
apiVersion: governor/v1
kind: Policy
metadata: {name: otel-example}
routes:
  - id: classify-cheap
    match: {task: classify}
    to: gpt-4o-mini
budgets:
  - id: per-run
    scope: run
    limit: {calls: 1}
"""

exporter = InMemorySpanExporter()  # use your OTLP exporter in real life
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("example")

gov = Governor(load_policy(POLICY))  # registers the span observer itself when opentelemetry is installed
messages = [{"role": "user", "content": "classify: great product"}]
with gov.run("run-1"):
    with tracer.start_as_current_span("first call"):
        decision = gov.check(model="gpt-4o", messages=messages, metadata={"task": "classify"})
    gov.record(decision, input_tokens=12, output_tokens=1)
    with tracer.start_as_current_span("second call"):
        gov.check(model="gpt-4o", messages=messages)

for span in exporter.get_finished_spans():
    attrs = {k: v for k, v in span.attributes.items() if k.startswith("governor.")}
    print(
        span.name,
        span.status.status_code.name,
        attrs["governor.verdict"],
        list(attrs["governor.rule_ids"]),
        attrs["governor.model.requested"],
        "->",
        attrs["governor.model.routed"],
    )
    if span.status.description:
        print("  status:", span.status.description)
