"""Search spaces and the classic zoo, as YAML data (installed as ``nas.search_spaces``).

Files here are found with ``importlib.resources.files("nas.search_spaces")``,
never through the current directory.
"""
