"""The helpers of Ray's `ray._private.services` that libraries built on Ray
core call (modin reads the node's IP from here)."""


def get_node_ip_address(address=None):
    """The IP address of the node this process runs on (127.0.0.1 outside
    a cluster). `address` (Ray's probe target) is accepted and unused:
    oxray asks its node instead of probing the network."""
    from oxray.util import get_node_ip_address as node_ip

    return node_ip()
