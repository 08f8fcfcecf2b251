# Before any kernel is decorated: Numba caches under a folder keyed by all of alphad's source.
from alphad.ipc.kernel_cache import configure as _configure_kernel_cache

_configure_kernel_cache()
