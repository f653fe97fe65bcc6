"""Usage reports: what learners and administrators see of the tutor's calls and budgets."""
