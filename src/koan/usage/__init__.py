"""LLM usage: the tutor's provider from settings, call records, budgets and the reply cache."""
