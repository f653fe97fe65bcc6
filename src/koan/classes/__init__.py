"""Classes: a teacher's course with a roster, class assignments, dashboards and tutor controls."""
