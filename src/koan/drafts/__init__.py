"""Drafts: the code a learner is writing for an exercise, saved as they type."""
