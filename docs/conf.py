"""Sphinx configuration of glm's API reference, docs/api/index.rst (the other pages of docs/ are
Markdown, read on their own).  Build it with the installed glm (the compiled modules are needed):

    python -m sphinx -W -b html docs docs/_build/html

tests/test_api_docs.py builds it so, warnings as errors.
"""
project = "glm"
author = "glm contributors"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon"]
root_doc = "api/index"
source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_build", "**/*.md"]

napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
html_theme = "alabaster"
