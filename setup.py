"""Builds the compiled core: the Cython sources in ext/ become extension modules of the glm package."""
import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

MODULES = ["_vocab", "_count", "_mkn", "_query", "_arpa", "_glm", "_kenlm", "_check", "_state"]

extensions = [
    Extension(
        f"glm.{name}",
        [f"ext/{name}.pyx"],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"],
        language="c++" if name in ("_count", "_glm") else "c",
    )
    for name in MODULES
]

setup(ext_modules=cythonize(extensions, language_level=3, compiler_directives={"boundscheck": False,
                                                                               "wraparound": False}))
