"""The optional C extension of attndilute; everything else is declared in pyproject.toml.

``attndilute.instrument._entropy_kernel`` is the one-pass entropy kernel of the online ADI on CPU
(``attndilute/instrument/cpu_kernel.py``). It is optional: where no C compiler is found the
install goes on without it, and the same sums take the torch form.
"""

import sys

from setuptools import Extension, setup

FLAGS = [] if sys.platform == "win32" else [
    "-O3",
    # reorder float sums so they vectorise; NaN and inf keep their meaning (no -ffinite-math-only)
    "-fno-math-errno", "-fno-trapping-math", "-fassociative-math", "-fno-signed-zeros", "-ffp-contract=fast",
]

setup(
    ext_modules=[
        Extension(
            "attndilute.instrument._entropy_kernel",
            sources=["attndilute/instrument/_entropy_kernel.c"],
            extra_compile_args=FLAGS,
            optional=True,
        )
    ]
)
