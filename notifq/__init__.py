"""notifq: Kubernetes-native notification campaigns.

`notifq.core` is the shared core (settings, database models and migrations, the
job contract, clients). `notifq.operator`, `notifq.worker` and `notifq.api` are
the three deployables; they import the core and never each other.
"""

__version__ = "0.1.0"
