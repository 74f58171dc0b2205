"""`oxray.cloudpickle`, as Ray ships `ray.cloudpickle`: the cloudpickle
oxray serializes functions and values with."""

from cloudpickle import *  # noqa: F401,F403
from cloudpickle import dump, dumps, load, loads  # noqa: F401
