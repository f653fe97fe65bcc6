"""The tutor's gateway to the model: the budget held before each call, the call's record and
settlement after it, and the cache of deterministic replies (the provider chain itself is
`koan.llm.tutor_llm`)."""
