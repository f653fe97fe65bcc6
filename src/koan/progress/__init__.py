"""Progress and achievements: totals, streaks, levels, skill mastery, achievements, exports."""
