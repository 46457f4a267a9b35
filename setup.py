"""What ``pyproject.toml`` cannot say: the repository's ``configs/`` folder is installed as the
``detbox.configs`` package (``importlib.resources.files("detbox.configs")``), so the recipes
and their ``_base_`` pieces ship in the wheel and the sdist while the tree keeps one copy."""

from setuptools import find_namespace_packages, setup

NOT_CODE = ["*.__pycache__", "*.__pycache__.*", "__pycache__", "__pycache__.*"]
CONFIG_PACKAGES = ["detbox.configs", *(
    f"detbox.configs.{name}" for name in find_namespace_packages(where="configs",
                                                                 exclude=NOT_CODE))]

setup(
    packages=[*find_namespace_packages(include=["detbox", "detbox.*"], exclude=NOT_CODE),
              *CONFIG_PACKAGES],
    package_dir={"detbox.configs": "configs"},
    package_data={"detbox.serve": ["*.html"],
                  **{name: ["*.md", "*.yaml", "*.yml", "*.json"] for name in CONFIG_PACKAGES}},
)
