"""Everything that talks to the outside: Slack, the command line, the scheduler."""
