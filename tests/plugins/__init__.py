"""Plugins written outside vhpclib, registered by the tests that use them (the proof the axes are open)."""
