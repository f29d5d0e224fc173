"""Packaging: the metadata lives here; pyproject.toml holds the build system and tool settings."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent


def read_version() -> str:
    # One place for the version: greenpoint/__init__.py. Read as text, because importing
    # the package would need its dependencies before they are installed.
    text = (HERE / "greenpoint" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    if match is None:
        raise RuntimeError("greenpoint/__init__.py has no __version__ line")
    return match.group(1)


# PLACEHOLDER: the project has no public home yet; replace these before publishing.
HOME = "https://greenpoint.invalid"

setup(
    name="greenpoint",
    version=read_version(),
    description="Twisted's endpoint strings and protocols on gevent, with happy eyeballs and safe TLS.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    author="the greenpoint developers",
    license_expression="MIT",
    license_files=["LICENSE"],
    url=HOME,
    project_urls={
        "Documentation": f"{HOME}/docs",
        "Source": f"{HOME}/source",
        "Changelog": f"{HOME}/source/CHANGELOG.md",
        "Issues": f"{HOME}/issues",
    },
    keywords=["gevent", "twisted", "endpoints", "tls", "happy-eyeballs", "haproxy", "systemd"],
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Framework :: Twisted",
        "Intended Audience :: Developers",
        "Operating System :: POSIX",
        "Operating System :: POSIX :: Linux",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Programming Language :: Python :: Implementation :: CPython",
        "Topic :: Internet",
        "Topic :: Software Development :: Libraries :: Python Modules",
        "Topic :: System :: Networking",
        "Typing :: Typed",
    ],
    packages=find_packages(include=["greenpoint", "greenpoint.*"]),
    package_data={"greenpoint": ["py.typed"]},
    python_requires=">=3.10",
    # The floors are the oldest releases the test suite passes with: `make test-min`
    # installs exactly these (constraints-min.txt says why each) and CI runs it.
    install_requires=[
        "gevent>=23.7",
        "pyOpenSSL>=24.3",
        "cryptography>=42.0.0",
        "service-identity>=21.1",
        "idna>=3.0",
    ],
    extras_require={
        "test": [
            "pytest>=7.4",
            "pytest-timeout>=2.1",
            "trustme>=1.1",
            "hypothesis>=6.80",
            # A test-only dependency: ported Twisted protocols run over greenpoint.
            "twisted>=23.8",
        ],
        "lint": ["ruff>=0.4", "mypy>=1.10"],
    },
    entry_points={
        "console_scripts": ["greenpoint = greenpoint.__main__:main"],
    },
)
