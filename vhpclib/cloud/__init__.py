"""Cloud environments vHPC provisions, measures and always tears down (EC2 through boto3).

``spec`` is the inventory's ``cloud:`` section; ``session`` the boto3 clients (credentials from the
environment or ``~/.aws`` only, an endpoint override only for tests against moto); ``provision``
creates, waits for strict SSH and records the hosts (``state``); ``teardown`` terminates everything
carrying vHPC's tags; ``cost`` holds the guards and the hourly estimate; ``hostkeys`` reads host keys
from the console output; ``facts`` fingerprints a cloud host; ``emulated`` maps instances moto
invents onto testbed nodes (tests only); ``cli`` is ``vhpc cloud up|status|down``.
"""
