"""Fixtures for the LLM layer.

`llm_server_session`, `llm_server` (a real loopback OpenAI/Anthropic server) and `fake_timer`
moved to tests/conftest.py, so the chat, usage and generation tests share them.
"""
