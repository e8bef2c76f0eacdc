"""The Slack front end: a Bolt app whose listeners are grouped by kind (one module each)."""
