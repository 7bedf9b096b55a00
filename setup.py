"""Lists the packages under each folder of the ``maskdpo`` namespace (pyproject.toml holds the rest)."""

from setuptools import find_packages, setup

FOLDERS = {
    "maskdpo.client": "client",
    "maskdpo.server": "server",
    "maskdpo.trainer": "trainer",
    "maskdpo.toyworld": "toyworld",
    "maskdpo.v1": "protos/maskdpo/v1",
}

packages = []
for name, folder in FOLDERS.items():
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=FOLDERS)
