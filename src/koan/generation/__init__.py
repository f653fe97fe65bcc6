"""Exercises written by the LLM on request, validated in the sandbox before they are saved."""
