"""Front doors: one per client protocol, at the edge of the one pipeline.

- ``base``: what a door is to the ASGI front door (``Incoming``, ``JsonReply``, ``StreamReply``).
- Adapters on the pipeline: ``chat_completions`` (the internal shape itself), ``messages_door``
  (Anthropic Messages), ``responses_door`` (OpenAI Responses).
- Pure converters between a protocol and the chat shape (no I/O, nothing from the request path):
  ``anthropic_messages`` / ``anthropic_rendering``, ``openai_responses`` / ``responses_rendering``,
  and ``response_store`` (stored responses for ``previous_response_id``).
"""
