"""The scripted upstream record.py runs the real CLIs against (Anthropic Messages and OpenAI Responses, SSE).

Only for re-recording the session files in this directory: the replay tests read
the recorded files, never this server. Each answer is chosen by a keyword in the
prompt (USE_BASH, USE_AGENT, FAIL400 for Claude Code; USE_SHELL for Codex), and
every call it serves is appended to the log named on the command line with the
usage it returned: the independent count the importer tests compare against.

Usage: python scripted_upstream.py PORT LOGFILE
"""
import itertools, json, sys, http.server
LOG = open(sys.argv[2], "a")
SEQ = itertools.count(1)

def text_of(content):
    if isinstance(content, str): return content
    out = []
    for b in content or []:
        if isinstance(b, dict):
            if b.get("type") in ("text", "input_text", "output_text"): out.append(b.get("text", ""))
            if b.get("type") == "tool_result": out.append("<tool_result>")
    return "\n".join(out)

def sse(handler, events):
    handler.send_response(200)
    handler.send_header("content-type", "text/event-stream"); handler.send_header("cache-control", "no-cache")
    handler.send_header("transfer-encoding", "chunked"); handler.end_headers()
    for name, data in events:
        chunk = (f"event: {name}\n" if name else "") + f"data: {json.dumps(data)}\n\n"
        b = chunk.encode(); handler.wfile.write(f"{len(b):x}\r\n".encode() + b + b"\r\n")
    handler.wfile.write(b"0\r\n\r\n"); handler.wfile.flush()

def anthropic(h, req):
    n = next(SEQ)
    msgs = req.get("messages", [])
    first = text_of(msgs[0]["content"]) if msgs else ""
    last = msgs[-1] if msgs else {}
    tool_results = sum(1 for m in msgs if isinstance(m.get("content"), list) for b in m["content"] if isinstance(b, dict) and b.get("type") == "tool_result")
    tools = [t.get("name") for t in req.get("tools") or []]
    if "FAIL400" in first:
        body = json.dumps({"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long: 250000 tokens > 200000 maximum"}}).encode()
        h.send_response(400); h.send_header("content-type", "application/json"); h.send_header("request-id", f"req_err{n:04d}")
        h.send_header("content-length", str(len(body))); h.end_headers(); h.wfile.write(body)
        LOG.write(json.dumps({"n": n, "api": "anthropic", "status": 400}) + "\n"); LOG.flush(); return
    if "SUBTASK" in first:
        blocks = [("text", "The subtask is done: 42.")]
    elif tool_results == 0 and "USE_AGENT" in first:
        blocks = [("text", "I will delegate this."), ("tool_use", "Agent", {"description": "compute", "prompt": "SUBTASK: compute 6*7 and reply with the number.", "subagent_type": "general-purpose"})]
    elif tool_results == 0 and "USE_BASH" in first:
        blocks = [("text", "Let me run it."), ("tool_use", "Bash", {"command": "echo governed", "description": "print a word"})]
    else:
        blocks = [("text", "Done.")]
    model = req.get("model")
    inp, cr, cw5, cw1, out = 3 + n, 1000 * n, 7 * n, 2000 + n, 20 + n
    usage0 = {"input_tokens": inp, "cache_creation_input_tokens": cw5 + cw1, "cache_read_input_tokens": cr,
              "cache_creation": {"ephemeral_5m_input_tokens": cw5, "ephemeral_1h_input_tokens": cw1},
              "output_tokens": 1, "service_tier": "standard"}
    mid = f"msg_scripted{n:04d}"
    ev = [("message_start", {"type": "message_start", "message": {"id": mid, "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage0}})]
    for i, b in enumerate(blocks):
        if b[0] == "text":
            ev.append(("content_block_start", {"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}}))
            ev.append(("content_block_delta", {"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": b[1]}}))
        else:
            ev.append(("content_block_start", {"type": "content_block_start", "index": i, "content_block": {"type": "tool_use", "id": f"toolu_{n:04d}_{i}", "name": b[1], "input": {}}}))
            ev.append(("content_block_delta", {"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": json.dumps(b[2])}}))
        ev.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    stop = "tool_use" if any(b[0] == "tool_use" for b in blocks) else "end_turn"
    final = dict(usage0, output_tokens=out)
    ev.append(("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": {"input_tokens": inp, "cache_creation_input_tokens": cw5 + cw1, "cache_read_input_tokens": cr, "output_tokens": out}}))
    ev.append(("message_stop", {"type": "message_stop"}))
    h.close_connection = False
    sse_headers = {"request-id": f"req_scripted{n:04d}"}
    h.send_response(200)
    for k, v in sse_headers.items(): h.send_header(k, v)
    h.send_header("content-type", "text/event-stream"); h.send_header("transfer-encoding", "chunked"); h.end_headers()
    for name, data in ev:
        b = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode(); h.wfile.write(f"{len(b):x}\r\n".encode() + b + b"\r\n")
    h.wfile.write(b"0\r\n\r\n"); h.wfile.flush()
    LOG.write(json.dumps({"n": n, "api": "anthropic", "status": 200, "id": mid, "request_id": sse_headers["request-id"], "model": model, "session": h.headers.get("x-claude-code-session-id"), "usage": final, "tools": len(tools), "first": first[:60]}) + "\n"); LOG.flush()

def responses(h, req):
    n = next(SEQ)
    items = req.get("input") or []
    outputs = sum(1 for it in items if isinstance(it, dict) and it.get("type") == "function_call_output")
    user = " ".join(text_of(it.get("content")) for it in items if isinstance(it, dict) and it.get("role") == "user")
    tools = [t.get("name") for t in req.get("tools") or [] if isinstance(t, dict)]
    rid = f"resp_scripted{n:04d}"
    if "USE_SHELL" in user and outputs == 0:
        name = "exec_command" if "exec_command" in tools else "shell"
        args = {"cmd": "echo governed"} if name == "exec_command" else {"command": ["bash", "-lc", "echo governed"]}
        item = {"type": "function_call", "id": f"fc_{n:04d}", "call_id": f"call_{n:04d}", "name": name, "arguments": json.dumps(args), "status": "completed"}
    else:
        item = {"type": "message", "id": f"msg_{n:04d}", "role": "assistant", "status": "completed", "content": [{"type": "output_text", "text": "Done.", "annotations": []}]}
    inp, cached, out, reasoning = 5000 + 10 * n, 1000 + n, 30 + n, 10 + n
    usage = {"input_tokens": inp, "input_tokens_details": {"cached_tokens": cached}, "output_tokens": out, "output_tokens_details": {"reasoning_tokens": reasoning}, "total_tokens": inp + out}
    base = {"id": rid, "object": "response", "created_at": 1764770000 + n, "model": req.get("model"), "status": "in_progress", "output": []}
    ev = [("response.created", {"type": "response.created", "sequence_number": 0, "response": base}),
          ("response.output_item.added", {"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": dict(item, status="in_progress")})]
    if item["type"] == "message":
        ev.append(("response.output_text.delta", {"type": "response.output_text.delta", "sequence_number": 2, "item_id": item["id"], "output_index": 0, "content_index": 0, "delta": "Done."}))
    ev.append(("response.output_item.done", {"type": "response.output_item.done", "sequence_number": 3, "output_index": 0, "item": item}))
    ev.append(("response.completed", {"type": "response.completed", "sequence_number": 4, "response": dict(base, status="completed", output=[item], usage=usage)}))
    h.send_response(200); h.send_header("content-type", "text/event-stream"); h.send_header("transfer-encoding", "chunked"); h.end_headers()
    for name, data in ev:
        b = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode(); h.wfile.write(f"{len(b):x}\r\n".encode() + b + b"\r\n")
    h.wfile.write(b"0\r\n\r\n"); h.wfile.flush()
    LOG.write(json.dumps({"n": n, "api": "responses", "status": 200, "id": rid, "model": req.get("model"), "session": h.headers.get("session-id") or h.headers.get("session_id"), "usage": usage, "tools": tools, "user": user[-80:]}) + "\n"); LOG.flush()

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_HEAD(self):
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def do_GET(self):
        body = json.dumps({"data": [], "models": []}).encode(); self.send_response(200); self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
        if self.path.startswith("/v1/messages"): return anthropic(self, req)
        if self.path.startswith("/v1/responses"): return responses(self, req)
        LOG.write(json.dumps({"unhandled": self.path}) + "\n"); LOG.flush()
        self.send_response(404); self.send_header("content-length", "0"); self.end_headers()
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
