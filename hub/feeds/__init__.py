"""Live feeds (docs/feeds.md): a branch's board feed and one ticket's feed, over
WebSocket and Server-Sent Events, with snapshot or exact resume by `seq`."""
