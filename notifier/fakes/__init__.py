"""Fake SMS, Zalo and web push gateways: real HTTP servers on 127.0.0.1 that speak the real APIs, for the
tests and the demo. Each records what it took and can be told to fail (`fail_next`)."""
