"""The run's tmux session (`session`): how it is laid out (`layouts`) and built
(`building`), what tmux says about its panes (`panes`), command lines and the rules that
keep task text away from tmux's parsers (`commands`), wake-ups that are never lost
(`wakeups`), and what every pane of a run runs (`pane_programs`: the one contract between
the launcher, the supervisor, the wrapper, recovery and the resolver).

May import: errors, states, fmt, versions.
"""
