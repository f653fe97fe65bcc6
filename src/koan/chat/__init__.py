"""The tutor chat: conversations, messages, streamed replies and the solution-leak guard."""
