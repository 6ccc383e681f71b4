"""Search spaces: network templates whose values are decisions (see ``search_spaces/README.md``)."""

from nas.space.space import *  # noqa: F403
