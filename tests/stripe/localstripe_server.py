"""Runs localstripe (a stateful fake Stripe, from PyPI) for one test: on the port given, from
scratch, and without its habit of pickling every object to one shared file in /tmp, which
tests running side by side would race on."""

import sys

import localstripe.resources

localstripe.resources.Store.dump_to_disk = lambda self: None

from localstripe.server import start  # noqa: E402

sys.argv = [sys.argv[0], "--from-scratch", *sys.argv[1:]]
start()
