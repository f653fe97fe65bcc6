"""The tutor's gateway to the model: the provider chain from settings, the budget held before
each call, the call's record and settlement after it, and the cache of deterministic replies."""
