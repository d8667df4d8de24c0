"""The service layer: the one place where the domain meets the store and the broker (DESIGN §3).

- `branches`: every branch's state, folded from its log in this process, and how it keeps up;
- `follow`: the events other hub processes publish, folded in as they come;
- `pipeline`: one command: decided by the domain, folded, appended with what it makes owed, published;
- `queue`: `QueueService`, the commands and reads the web layer, the pages and the notifier call.
"""
