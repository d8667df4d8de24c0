"""The pure domain core: queue rules, branch state folded from events. No I/O, no async; `now` is an argument."""
