"""``kubectl notifq``: a kubectl plugin for Campaigns.

It talks only to the Kubernetes API, with the user's own kubeconfig identity (no
database or Redis credentials on a laptop): counts, rates and reasons come from the
Campaign's status, actions are patches of its spec or annotations, exactly what
``kubectl patch`` / ``kubectl annotate`` would do, so Kubernetes RBAC decides who may.
"""
